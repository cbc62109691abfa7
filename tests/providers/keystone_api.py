"""The REAL OpenStack Keystone (PyPI keystone, pinned) on 127.0.0.1, for Octavia with
``auth_strategy = keystone`` (its keystonemiddleware validates every token with it).

Its own virtualenv (``$VIPCAST_KEYSTONE_VENV``, default ``~/.cache/vipcast/keystone-30.0.0``,
made by ``scripts/keystone-venv.sh``). The slow part -- ``keystone-manage db_sync`` (its
alembic migrations do run on sqlite), ``fernet_setup``, ``credential_setup``, ``bootstrap``
and the seeding through Keystone's own API -- is done once into a state directory cached
beside the venv (``<venv>-state``); each test session copies it, points the catalog's identity
endpoint at its own port and starts Keystone (~5 s). Passwords are hashed with bcrypt cost 4
(``[identity] password_hash_rounds``) so that authenticating costs milliseconds, not seconds.

Seeded: project ``service`` with the user ``octavia`` (role ``service``: what Octavia's
keystonemiddleware authenticates as to validate tokens); project ``vipcast`` with the user
``vipcast`` (role ``member``: may create load balancers there) and its application credential
``vipcast-lb``, and the user ``watcher`` (role ``reader`` only: may look, not write).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

VERSION = "30.0.0"
VENV = Path(os.environ.get("VIPCAST_KEYSTONE_VENV",
                           Path.home() / ".cache" / "vipcast" / f"keystone-{VERSION}"))
#: rebuilt when this file (its configuration, its seeding) changes
STATE = Path(f"{VENV}-state-"
             f"{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}")
SERVE = Path(__file__).with_name("keystone_serve.py")
ADMIN_PASSWORD = "vc-admin-pw"
PASSWORDS = {"octavia": "vc-octavia-pw", "vipcast": "vc-vipcast-pw", "watcher": "vc-watcher-pw"}
_PLACEHOLDER = "http://127.0.0.1:5000/v3"

CONFIG = """[DEFAULT]
log_file = {dir}/keystone.log
[database]
connection = sqlite:///{dir}/keystone.sqlite
[token]
provider = fernet
[fernet_tokens]
key_repository = {dir}/fernet
[fernet_receipts]
key_repository = {dir}/fernet
[credential]
key_repository = {dir}/credential
[identity]
password_hash_rounds = 4
[cache]
enabled = false
"""


@dataclass(frozen=True)
class Seed:
    vipcast_project: str
    app_credential_id: str
    app_credential_secret: str


def listening_socket() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 at a port the kernel chose, for a server process to
    inherit (``pass_fds``). The port is held from the moment it is chosen until the server
    serves it: choosing a port with bind(0), closing it and letting the server bind it later
    left a window in which another process (another test run, CI's servers) could take it."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


class KeystoneAPI:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.sock: socket.socket | None = listening_socket()
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seed: Seed | None = None

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait(timeout)

    def launch(self) -> None:
        """Start Keystone from a copy of the cached state; :meth:`wait` next."""
        _ensure_state()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        shutil.copytree(STATE, self.dir)
        conf = self.dir / "keystone.conf"
        conf.write_text(CONFIG.format(dir=self.dir))
        with sqlite3.connect(self.dir / "keystone.sqlite") as db:
            db.execute("UPDATE endpoint SET url = ? WHERE url = ?", (self.url, _PLACEHOLDER))
        raw = json.loads((self.dir / "seed.json").read_text())
        self.seed = Seed(raw["project"], raw["app_credential_id"], raw["app_credential_secret"])
        assert self.sock is not None, "launched once only"
        self.proc = _serve(conf, self.sock, self.dir / "serve.log")
        self.sock.close()  # the server holds it now
        self.sock = None

    def wait(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        _wait(self.url, self.proc, timeout, self.dir / "serve.log")

    def stop(self) -> None:
        _stop(self.proc)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def log(self) -> str:
        path = self.dir / "keystone.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _serve(conf: Path, sock: socket.socket, log: Path) -> subprocess.Popen[bytes]:
    fd = sock.fileno()
    with log.open("ab") as out:
        return subprocess.Popen([str(VENV / "bin" / "python"), str(SERVE), str(conf), str(fd)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                pass_fds=(fd,))


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"keystone exited {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            # the socket listens from the start: a request waits in its backlog until the
            # server serves, so each try may take as long as the start (a loaded machine)
            with urllib.request.urlopen(url, timeout=10) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"keystone did not answer at {url} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _ensure_state() -> None:
    """Build the cached state directory once (under a lock: parallel sessions wait)."""
    if (STATE / "seed.json").exists():
        return
    STATE.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{STATE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (STATE / "seed.json").exists():
            return
        build = Path(tempfile.mkdtemp(prefix="keystone-state-", dir=STATE.parent))
        try:
            _build_state(build)
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(STATE)
            build.rename(STATE)
        finally:
            shutil.rmtree(build, ignore_errors=True)


def _build_state(d: Path) -> None:
    for sub in ("fernet", "credential"):
        (d / sub).mkdir(mode=0o700)
    conf = d / "keystone.conf"
    conf.write_text(CONFIG.format(dir=d))
    manage = [str(VENV / "bin" / "keystone-manage"), "--config-file", str(conf)]
    me = (subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
          .strip())
    group = (subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout
             .strip())
    for args in (["db_sync"],
                 ["fernet_setup", "--keystone-user", me, "--keystone-group", group],
                 ["credential_setup", "--keystone-user", me, "--keystone-group", group],
                 ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                  "--bootstrap-public-url", _PLACEHOLDER, "--bootstrap-region-id", "RegionOne"]):
        subprocess.run([*manage, *args], check=True, capture_output=True, timeout=300)
    with listening_socket() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v3"
        with sqlite3.connect(d / "keystone.sqlite") as db:
            db.execute("UPDATE endpoint SET url = ? WHERE url = ?", (url, _PLACEHOLDER))
        proc = _serve(conf, sock, d / "serve.log")
    try:
        _wait(url, proc, 90.0, d / "serve.log")
        seed = _seed(url)
    finally:
        _stop(proc)
    with sqlite3.connect(d / "keystone.sqlite") as db:
        db.execute("UPDATE endpoint SET url = ? WHERE url = ?", (_PLACEHOLDER, url))
    (d / "seed.json").write_text(json.dumps(seed))
    for name in ("keystone.log", "serve.log"):
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()


def _seed(url: str) -> dict[str, str]:
    """Projects, users, roles and the application credential, through Keystone's API."""
    import openstack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        admin = openstack.connection.Connection(
            auth_url=url, username="admin", password=ADMIN_PASSWORD, project_name="admin",
            user_domain_name="Default", project_domain_name="Default")
        idn = admin.identity
        roles = {r.name: r for r in idn.roles()}
        service = idn.create_project(name="service", domain_id="default")
        octavia = idn.create_user(name="octavia", password=PASSWORDS["octavia"],
                                  domain_id="default", default_project_id=service.id)
        idn.assign_project_role_to_user(service, octavia, roles["service"])
        project = idn.create_project(name="vipcast", domain_id="default")
        for name, role in (("vipcast", "member"), ("watcher", "reader")):
            user = idn.create_user(name=name, password=PASSWORDS[name], domain_id="default",
                                   default_project_id=project.id)
            idn.assign_project_role_to_user(project, user, roles[role])
        mine = openstack.connection.Connection(
            auth_url=url, username="vipcast", password=PASSWORDS["vipcast"],
            project_name="vipcast", user_domain_name="Default", project_domain_name="Default")
        cred = mine.identity.create_application_credential(user=mine.current_user_id,
                                                           name="vipcast-lb")
        out = {"project": str(project.id), "app_credential_id": str(cred.id),
               "app_credential_secret": str(cred.secret)}
        mine.close()
        admin.close()
    return out


MISSING = None if (VENV / "bin" / "keystone-manage").exists() else (
    f"no Keystone at {VENV} (scripts/keystone-venv.sh installs keystone=={VERSION} there)")
