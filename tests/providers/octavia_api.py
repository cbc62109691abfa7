"""The REAL OpenStack Octavia API server (PyPI octavia, pinned) on 127.0.0.1 for the tests.

Its own virtualenv (``$VIPCAST_OCTAVIA_VENV``, default ``~/.cache/vipcast/octavia-19.0.0``,
made by ``scripts/octavia-venv.sh``). A file sqlite database is created from the models'
metadata plus the seeded lookup rows (octavia_seed.py); ``noauth``, the ``noop_driver``
provider and ``network_noop_driver``; ``[database] pool_timeout`` left empty.

The noop provider leaves everything PENDING_*; :meth:`OctaviaAPI.settle` moves objects on in
the database as Octavia's functional tests do: to ACTIVE/ONLINE (DELETED for PENDING_DELETE),
or to ERROR for the load balancers named in ``error_at_create``; deleted children's rows go
(a deleted load balancer's row stays, DELETED), as Octavia's controller worker does.
``paused`` holds everything PENDING (a slow provider). A background thread settles every
``interval`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

VENV = Path(os.environ.get("VIPCAST_OCTAVIA_VENV",
                           Path.home() / ".cache" / "vipcast" / "octavia-19.0.0"))
API = VENV / "bin" / "octavia-api"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OctaviaAPI:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.db = workdir / "octavia.sqlite"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        #: load balancer name -> how many of its creations land in ERROR
        self.error_at_create: dict[str, int] = {}
        self.interval = 0.05
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 90.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(VENV / "bin" / "python"), str(SEED), str(self.db)], check=True,
                       capture_output=True, timeout=120)
        conf = self.dir / "octavia.conf"
        conf.write_text(CONFIG.format(port=self.port, db=self.db, log=self.dir / "api.log"))
        self.proc = subprocess.Popen([str(API), "--config-file", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"octavia-api exited {self.proc.returncode}: "
                                   f"{self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
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
                # (a cascade delete marks only the LB) and deleted children's rows go
                if table == "load_balancer":
                    gone = "SELECT id FROM load_balancer WHERE provisioning_status=" \
                        "'PENDING_DELETE'"
                    pools = f"SELECT id FROM pool WHERE load_balancer_id IN ({gone})"
                    for child, column, ids in (("member", "pool_id", pools),
                                               ("health_monitor", "pool_id", pools),
                                               ("listener", "load_balancer_id", gone),
                                               ("pool", "load_balancer_id", gone)):
                        db.execute(f"DELETE FROM {child} WHERE {column} IN ({ids})")
                    db.execute("UPDATE load_balancer SET provisioning_status='DELETED' "
                               "WHERE provisioning_status='PENDING_DELETE'")
                else:
                    db.execute(f"DELETE FROM {table} "
                               "WHERE provisioning_status='PENDING_DELETE'")
                db.execute(f"UPDATE {table} SET provisioning_status='ACTIVE', "
                           "operating_status='ONLINE' WHERE provisioning_status LIKE 'PENDING_%'")

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db, timeout=5) as db:
            return list(db.execute(sql, args))


MISSING = None if API.exists() else (
    f"no Octavia API server at {API} (scripts/octavia-venv.sh installs octavia==19.0.0 there)")

