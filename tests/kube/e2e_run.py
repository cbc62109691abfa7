"""How the Kubernetes end-to-end tests run vipcast: from its container image (the default, so
that the artefact users deploy is the artefact tested) or from the source tree
(``VIPCAST_E2E_FROM_SOURCE=1``, for a machine without podman).

The image is the one ``scripts/build-image.sh`` builds (``scripts/test.sh`` builds it before
pytest; here the script only re-checks it, or rebuilds the small final stage after a source
change). Containers run rootful podman with ``deploy/image/containers.conf``: never podman's
default bridge network. The controller uses ``--network host`` (the API server is on the
root namespace's loopback; host networking changes nothing there), each speaker joins a lab
node's namespace (``--network ns:/run/netns/<node>``) with NET_ADMIN and NET_RAW only, as
the chart runs them. Paths given to a runner must be readable by the containers' user 65532
(directories 0755, files 0644).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.lab.netns import Netns, Process

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "deploy" / "image" / "containers.conf"
BUILD = REPO / "scripts" / "build-image.sh"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def vipcast_argv() -> list[str]:
    """vipcast from the source tree (PYTHONPATH names this checkout's ``src``)."""
    return [sys.executable, "-m", "vipcast.cli.main"]


@dataclass(frozen=True)
class Image:
    ref: str

    def podman(self, *args: str, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["podman", *args], capture_output=True, text=True,
                             timeout=timeout, env=podman_env(), check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} -> {out.returncode}\n"
                                 f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out

    def run(self, argv: Sequence[str], *opts: str, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """``podman run --rm`` of the image, as the chart's controller runs it (read-only root,
        no capabilities, the image's non-root user), plus ``opts``."""
        return self.podman("run", "--rm", "--read-only", "--cap-drop", "ALL", *opts,
                           self.ref, *argv, timeout=timeout, check=check)

    def start(self, name: str, argv: Sequence[str], *opts: str) -> str:
        """A detached container; removed by :meth:`stop`."""
        self.podman("run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
                    *opts, self.ref, *argv)
        return name

    def logs(self, name: str) -> str:
        out = self.podman("logs", name, check=False)
        return (out.stdout + out.stderr)[-4000:]

    def kill(self, name: str) -> None:
        """SIGKILL the container's process (a crash: nothing is cleaned up by vipcast)."""
        self.podman("kill", "-s", "KILL", name, check=False)

    def stop(self, name: str) -> None:
        self.podman("rm", "-f", "-t", "5", name, check=False, timeout=60)


def build_image(pin: str | None = None) -> Image:
    """Run scripts/build-image.sh (cached: seconds): the image under the script's tag, or
    pinned under ``pin`` (so that another checkout re-tagging ``vipcast:<version>`` meanwhile
    changes nothing for this session). The script tags ``pin`` itself, under its build lock:
    tagged here afterwards, another checkout's build could move ``vipcast:<version>`` (or
    remove this build's tag) in between, and the session would run that checkout's image."""
    argv = ["bash", str(BUILD)] + (["--tag", pin] if pin is not None else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1500, cwd=REPO,
                         check=False)
    assert out.returncode == 0, f"scripts/build-image.sh failed:\n{out.stderr[-5000:]}"
    return Image(pin if pin is not None else out.stdout.strip().splitlines()[-1])


@dataclass
class Handle:
    """One running vipcast process: a container or a process of the source tree."""

    label: str
    container: str | None = None
    image: Image | None = None
    process: Process | None = None
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.container is not None and self.image is not None:
            self.image.kill(self.container)
        elif self.process is not None:
            self.process.kill()
        elif self.popen is not None and self.popen.poll() is None:
            self.popen.kill()

    def stop(self) -> None:
        if self.container is not None and self.image is not None:
            self.image.stop(self.container)
        elif self.process is not None:
            self.process.stop(timeout=3.0)
        elif self.popen is not None:
            if self.popen.poll() is None:
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def logs(self) -> str:
        if self.container is not None and self.image is not None:
            return self.image.logs(self.container)
        if self.process is not None:
            return self.process.log_text()[-4000:]
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""


@dataclass
class Runner:
    """Starts the controller and the speakers of one test; :meth:`close` stops them all
    (speakers first: a running speaker would write its NodeAnnouncement again)."""

    image: Image | None
    workdir: Path
    handles: list[Handle] = field(default_factory=list)

    @property
    def what(self) -> str:
        return f"image {self.image.ref}" if self.image else "the source tree"

    def _name(self, role: str) -> str:
        return f"vc-{os.getpid()}-e2e-{role}"

    def controller(self, kubeconfig: Path, namespace: str, identity: str) -> Handle:
        args = ["controller", "--namespace", namespace, "--identity", identity,
                "--lease-duration", "2"]
        if self.image is not None:
            name = self.image.start(self._name("controller"),
                                    [*args, "--kubeconfig", "/kube/config"],
                                    "--network", "host", "-v", f"{kubeconfig}:/kube/config:ro")
            handle = Handle("controller", container=name, image=self.image)
        else:
            log_path = self.workdir / "controller.log"
            with log_path.open("ab") as log:
                popen = subprocess.Popen(
                    [*vipcast_argv(), *args, "--kubeconfig", str(kubeconfig)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            handle = Handle("controller", popen=popen, log_path=log_path)
        self.handles.append(handle)
        return handle

    def speaker(self, node: Netns, node_name: str, kubeconfig: Path, state: Path,
                metrics: str, env: Mapping[str, str] | None = None) -> Handle:
        """``vipcast speaker`` in ``node``'s namespace; ``state`` is created here."""
        state.mkdir(parents=True, exist_ok=True)
        args = ["speaker", "--node", node_name, "--metrics", metrics]
        if self.image is not None:
            # as the chart's speaker: user 0, NET_ADMIN and NET_RAW only, read-only root
            opts = ["--network", f"ns:/run/netns/{node.name}", "--user", "0",
                    "--cap-add", "NET_ADMIN,NET_RAW",
                    "-v", f"{kubeconfig}:/kube/config:ro", "-v", f"{state}:/state"]
            for key, value in (env or {}).items():
                opts += ["-e", f"{key}={value}"]
            name = self.image.start(self._name(f"speaker-{node.short}"),
                                    [*args, "--kubeconfig", "/kube/config",
                                     "--state-dir", "/state"], *opts)
            handle = Handle(f"speaker {node.short}", container=name, image=self.image)
        else:
            proc = node.spawn([*vipcast_argv(), *args, "--kubeconfig", str(kubeconfig),
                               "--state-dir", str(state)],
                              name="speaker", env={**os.environ, **(env or {})})
            handle = Handle(f"speaker {node.short}", process=proc)
        self.handles.append(handle)
        return handle

    def report(self) -> str:
        return "".join(f"\n----- {h.label} ({self.what})\n{h.logs()}" for h in self.handles)

    def close(self) -> None:
        for handle in sorted(self.handles, key=lambda h: not h.label.startswith("speaker")):
            handle.stop()
        self.handles.clear()
