"""``vipcast X`` imports only X's module; the lazy packages still give every name; the one-shot
commands end the program without freeing what they built."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
import yaml

from vipcast.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from alloc_plan import documents


def commands(cli: typer.Typer) -> set[str]:
    return set(typer.main.get_command(cli).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", main.MODULES)
def test_the_table_names_what_each_module_registers(module: str) -> None:
    want = {name for name, owner in main.COMMANDS.items() if owner == module}
    assert commands(main.build((module,))) == want | {"version"}


def test_a_command_gets_its_module_and_anything_else_all() -> None:
    assert commands(main.app_for(["plan", "x.yaml"])) == {
        "check-config", "plan", "explain", "version"}
    everything = set(main.COMMANDS) | {"version"}
    for argv in ([], ["--help"], ["no-such-command"], ["version"]):
        assert commands(main.app_for(argv)) == everything
    assert commands(main.app) == everything
    # help lists the commands in the modules' order, version after them (then the groups)
    names = list(typer.main.get_command(main.app).commands)  # type: ignore[attr-defined]
    assert names[:3] == ["check-config", "plan", "explain"]
    assert names.index("version") == names.index("handoff") + 1


def test_plan_imports_neither_other_areas_nor_the_protocols() -> None:
    """What ``vipcast plan`` imports (a fresh interpreter): its own module, not the agent's,
    nor BGP's or BFD's sans-IO packages (the plan's types name them for the checker only), nor
    asyncio (only watching the object files needs it)."""
    code = ("import sys; from vipcast.cli.main import app_for; app_for(['plan']); "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True, timeout=120).stdout.split())
    assert {m for m in loaded if m.startswith("vipcast.cli.")} == {"vipcast.cli.config_cmds",
                                                                 "vipcast.cli.main"}
    for heavy in ("vipcast.proto.bgp.session", "vipcast.proto.bfd.session",
                  "vipcast.core.gateway.translate", "vipcast.core.gateway.lookup", "asyncio"):
        assert heavy not in loaded


@pytest.mark.parametrize("package", ["vipcast.proto.bgp", "vipcast.proto.bfd",
                                     "vipcast.core.gateway"])
def test_lazy_packages_give_every_name_of_their_modules(package: str) -> None:
    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        where = importlib.import_module(pkg._WHERE[name], package)
        assert getattr(pkg, name) is getattr(where, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        pkg.no_such_name  # noqa: B018
    assert sorted(pkg._WHERE) == sorted(pkg.__all__)


def test_the_program_ends_one_shot_commands_with_what_they_wrote_and_their_status(
        tmp_path: Path) -> None:
    """``plan``, ``check-config`` and ``explain`` end with ``os._exit`` (nothing freed): what
    they print is all written, and their status is the command's."""
    from typer.testing import CliRunner

    objects = tmp_path / "objects.yaml"
    objects.write_text(yaml.safe_dump_all([d for _, d in documents(40, 3, 4)]))

    def program(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "vipcast.cli.main", *args],
                              capture_output=True, timeout=120, check=False)

    done = program("plan", "--json", "--no-save", str(objects))
    assert done.returncode == 0, done.stderr
    in_process = CliRunner().invoke(main.app, ["plan", "--json", "--no-save", str(objects)])
    assert done.stdout == in_process.stdout_bytes and done.stdout.endswith(b"\n}\n")
    assert program("check-config", str(objects)).stdout.startswith(b"valid: ")
    missing = program("plan", "--json", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 1 and b"no such file or directory" in missing.stdout
    unknown = program("explain", str(objects), "default/no-such-service")
    assert unknown.returncode == 1 and b"no Service default/no-such-service" in unknown.stderr
    assert main._flushed(None) == 0 and main._flushed(3) == 3
