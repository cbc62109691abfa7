"""The REAL OpenStack Octavia API server (PyPI octavia, pinned) on 127.0.0.1 for the tests.

Its own virtualenv (``$VIPCAST_OCTAVIA_VENV``, default ``~/.cache/vipcast/octavia-19.0.0``,
made by ``scripts/octavia-venv.sh``). A file sqlite database is created from the models'
metadata plus the seeded lookup rows (octavia_seed.py), once, cached in ``<venv>-db-<hash of
octavia_seed.py>`` and copied for each server; ``noauth`` -- or, given a running
:class:`keystone_api.KeystoneAPI`, ``keystone`` (its keystonemiddleware validates every token
with that real Keystone, and Octavia enforces project quotas, which it skips under noauth) --,
the ``noop_driver`` provider and ``network_noop_driver``; ``[database] pool_timeout`` empty.

The noop provider leaves everything PENDING_*; :meth:`OctaviaAPI.settle` moves objects on in
the database as Octavia's functional tests do: to ACTIVE/ONLINE (DELETED for PENDING_DELETE),
or to ERROR for the load balancers named in ``error_at_create``; deleted children's rows go
(a deleted load balancer's row stays, DELETED) and their project's quota use goes down,
as Octavia's controller worker does.
``paused`` holds everything PENDING (a slow provider). A background thread settles every
``interval`` seconds.

The server is octavia-api's own main run by octavia_serve.py on a listening socket bound
here and inherited, so that no other process can take the port between choosing and serving.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from keystone_api import PASSWORDS, KeystoneAPI, listening_socket

VENV = Path(os.environ.get("VIPCAST_OCTAVIA_VENV",
                           Path.home() / ".cache" / "vipcast" / "octavia-19.0.0"))
API = VENV / "bin" / "octavia-api"
SERVE = Path(__file__).with_name("octavia_serve.py")
SEED = Path(__file__).with_name("octavia_seed.py")
PROJECT = "4a0c7a4e1a6f4a8c9a0b6c7d8e9f0a1b"
SUBNET = "7f1c0b4e-0000-4000-8000-000000000001"
TABLES = ("load_balancer", "listener", "pool", "member", "health_monitor")

CONFIG = """[DEFAULT]
log_file = {log}
[api_settings]
bind_host = 127.0.0.1
bind_port = {port}
auth_strategy = noauth
default_provider_driver = noop_driver
enabled_provider_drivers = noop_driver:The noop driver
[database]
connection = sqlite:///{db}
pool_timeout =
[controller_worker]
network_driver = network_noop_driver
"""

KEYSTONE = """[keystone_authtoken]
www_authenticate_uri = {url}
auth_url = {url}
auth_type = password
username = octavia
password = {password}
project_name = service
user_domain_name = Default
project_domain_name = Default
interface = public
"""
#: table -> the quota column Octavia's worker decrements when its rows are deleted
_IN_USE = {"load_balancer": "in_use_load_balancer", "listener": "in_use_listener",
           "pool": "in_use_pool", "member": "in_use_member",
           "health_monitor": "in_use_health_monitor"}


class OctaviaAPI:
    def __init__(self, workdir: Path, keystone: KeystoneAPI | None = None) -> None:
        self.dir = workdir
        self.keystone = keystone
        self.db = workdir / "octavia.sqlite"
        #: held from the moment the kernel chose the port until the server serves it
        self.sock: socket.socket | None = listening_socket()
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        #: load balancer name -> how many of its creations land in ERROR
        self.error_at_create: dict[str, int] = {}
        self.interval = 0.05
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait(timeout)

    def launch(self) -> None:
        """Start the server (from a copy of the cached seeded database); :meth:`wait` next."""
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_seeded_database(), self.db)
        conf = self.dir / "octavia.conf"
        text = CONFIG.format(port=self.port, db=self.db, log=self.dir / "api.log")
        if self.keystone is not None:
            text = text.replace("auth_strategy = noauth", "auth_strategy = keystone")
            text += KEYSTONE.format(url=self.keystone.url, password=PASSWORDS["octavia"])
        conf.write_text(text)
        assert self.sock is not None, "launched once only"
        fd = self.sock.fileno()
        # octavia-api's own main, but serving the socket bound here (octavia_serve.py)
        self.proc = subprocess.Popen([str(VENV / "bin" / "python"), str(SERVE), str(fd),
                                      "--config-file", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, pass_fds=(fd,))
        self.sock.close()  # the server holds it now
        self.sock = None

    def wait(self, timeout: float = 90.0) -> None:
        """Until the server answers; then the settler thread starts."""
        assert self.proc is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"octavia-api exited {self.proc.returncode}: "
                                   f"{self.log()[-2000:]}")
            try:
                # the socket listens from the start: a request waits in its backlog until
                # the server serves, so each try may take as long as the start
                with urllib.request.urlopen(self.url + "/", timeout=10) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"octavia-api did not answer within {timeout} s")
        self._thread = threading.Thread(target=self._settler, daemon=True)
        self._thread.start()

    def log(self) -> str:
        path = self.dir / "api.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _settler(self) -> None:
        while not self._stop.is_set():
            if not self.paused:
                with contextlib.suppress(sqlite3.OperationalError):
                    self.settle()  # locked by the API: next round
            self._stop.wait(self.interval)

    def settle(self) -> None:
        """One pass: ERROR for the named creates, DELETED for deletes, ACTIVE/ONLINE else."""
        with sqlite3.connect(self.db, timeout=5) as db:
            pending = [t for t in TABLES if db.execute(
                f"SELECT 1 FROM {t} WHERE provisioning_status LIKE 'PENDING_%' "
                "LIMIT 1").fetchone()]
            if not pending:
                return
            for name, left in list(self.error_at_create.items()):
                if left > 0 and db.execute(
                        "UPDATE load_balancer SET provisioning_status='ERROR', "
                        "operating_status='ERROR' WHERE name=? AND "
                        "provisioning_status='PENDING_CREATE'", (name,)).rowcount:
                    self.error_at_create[name] = left - 1
            for table in pending:
                # as Octavia's worker does: a deleted LB row stays (DELETED), its children
                # (a cascade delete marks only the LB) and deleted children's rows go, and
                # the project's quota use goes down
                if table == "load_balancer":
                    gone = "SELECT id FROM load_balancer WHERE provisioning_status=" \
                        "'PENDING_DELETE'"
                    pools = f"SELECT id FROM pool WHERE load_balancer_id IN ({gone})"
                    for child, column, ids in (("member", "pool_id", pools),
                                               ("health_monitor", "pool_id", pools),
                                               ("listener", "load_balancer_id", gone),
                                               ("pool", "load_balancer_id", gone)):
                        _release_quota(db, child, f"{column} IN ({ids})")
                        db.execute(f"DELETE FROM {child} WHERE {column} IN ({ids})")
                    _release_quota(db, "load_balancer", "provisioning_status='PENDING_DELETE'")
                    db.execute("UPDATE load_balancer SET provisioning_status='DELETED' "
                               "WHERE provisioning_status='PENDING_DELETE'")
                else:
                    _release_quota(db, table, "provisioning_status='PENDING_DELETE'")
                    db.execute(f"DELETE FROM {table} "
                               "WHERE provisioning_status='PENDING_DELETE'")
                db.execute(f"UPDATE {table} SET provisioning_status='ACTIVE', "
                           "operating_status='ONLINE' WHERE provisioning_status LIKE 'PENDING_%'")

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db, timeout=5) as db:
            return list(db.execute(sql, args))


def _seeded_database() -> Path:
    """The seeded database, made once (octavia_seed.py) and cached beside the venv (again
    when octavia_seed.py changes)."""
    digest = hashlib.sha256(SEED.read_bytes()).hexdigest()[:12]
    cached = Path(f"{VENV}-db-{digest}") / "octavia.sqlite"
    if cached.exists():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{cached}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.exists():
            fresh = cached.with_suffix(".new")
            fresh.unlink(missing_ok=True)
            subprocess.run([str(VENV / "bin" / "python"), str(SEED), str(fresh)], check=True,
                           capture_output=True, timeout=300)
            fresh.rename(cached)
    return cached


def _release_quota(db: sqlite3.Connection, table: str, where: str) -> None:
    column = _IN_USE[table]
    for project, count in db.execute(f"SELECT project_id, COUNT(*) FROM {table} WHERE {where} "
                                     "GROUP BY project_id").fetchall():
        db.execute(f"UPDATE quotas SET {column} = MAX(COALESCE({column}, 0) - ?, 0) "
                   "WHERE project_id = ?", (count, project))


MISSING = None if API.exists() else (
    f"no Octavia API server at {API} (scripts/octavia-venv.sh installs octavia==19.0.0 there)")



@contextlib.contextmanager
def with_keystone(keystone_dir: Path, octavia_dir: Path
                  ) -> Iterator[tuple[OctaviaAPI, KeystoneAPI]]:
    """The real Keystone and an Octavia API server with ``auth_strategy = keystone``, both
    started at once (Octavia asks Keystone only when the first request comes), then stopped.
    The caller skips first when ``MISSING`` or keystone_api's ``MISSING`` says why it can't."""
    keystone = KeystoneAPI(keystone_dir)
    octavia = OctaviaAPI(octavia_dir, keystone=keystone)
    try:
        keystone.launch()
        octavia.launch()
        keystone.wait()
        octavia.wait()
        yield octavia, keystone
    finally:
        octavia.stop()
        keystone.stop()
