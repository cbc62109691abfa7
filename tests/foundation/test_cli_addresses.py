"""Every ``HOST:PORT`` option of the command line goes through the one parser
(``cli/address_options.py`` -> ``spec.addresses.parse_host_port``): a bad value is one line on
standard error naming the option and the value, exit status 2, no traceback, nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vipcast.cli.address_options import host_port, host_ports, optional_host_port
from vipcast.cli.main import app

BAD = {
    "nonsense": "no port (expected HOST:PORT)",
    "1.2.3.4:99999": "port '99999' is not a number from 0 to 65535",
    "[::1": "unclosed or empty '['",
    "::1": "write an IPv6 address with its port as [IPV6]:PORT",
    "192.0.2.1:http": "port 'http' is not a number",
}


def _commands(tmp: Path) -> list[tuple[list[str], str]]:
    """(the command line before the option, the option) for every address option."""
    files = ["--config", str(tmp), "--node", "n1"]
    return [
        (["agent", *files], "--metrics-address"),
        (["agent", *files], "--listen"),
        (["status"], "--address"),
        (["gateway", *files, "--workdir", str(tmp / "gw")], "--metrics-address"),
        (["controller"], "--metrics"),
        (["controller"], "--health"),
        (["speaker", "--node", "n1"], "--metrics"),
        (["speaker", "--node", "n1"], "--listen"),
        (["kube", "webhook", "--tls-cert", str(tmp / "c"), "--tls-key", str(tmp / "k")],
         "--listen"),
        (["dataplane", "render", "--config", str(tmp), "--node", "n1"], "--down"),
    ]


@pytest.mark.parametrize("value", sorted(BAD))
def test_every_address_option_refuses_a_bad_value_in_one_line(
    tmp_path: Path, value: str
) -> None:
    runner = CliRunner()
    for command, option in _commands(tmp_path):
        result = runner.invoke(app, [*command, option, value])
        where = (command[0], option, value)
        assert result.exit_code == 2, (where, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), (where, result.exception)
        assert result.stdout == "", (where, result.stdout)
        assert result.stderr.startswith(f"error: {option} {value!r}: {BAD[value]}"), (
            where, result.stderr)
        assert result.stderr.count("\n") == 1, (where, result.stderr)
    assert not (tmp_path / "gw").exists()  # the gateway did not start


def test_a_repeated_option_names_the_bad_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["agent", "--config", str(tmp_path), "--node", "n1",
                                      "--listen", "127.0.0.1:179", "--listen", "[::1]:x"])
    assert result.exit_code == 2
    assert result.stderr == "error: --listen '[::1]:x': port 'x' is not a number from 0 to 65535\n"


def test_the_process_prints_no_traceback(tmp_path: Path) -> None:
    """The case of the report: ``vipcast gateway --metrics-address nonsense`` as a process."""
    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "vipcast.cli.main", "gateway", "-c", str(tmp_path), "-n", "n1",
         "--workdir", str(tmp_path / "gw"), "--metrics-address", "nonsense"],
        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: --metrics-address 'nonsense': no port (expected HOST:PORT)\n"
    assert done.stdout == ""


def test_defaults_of_the_options() -> None:
    # a bare port: loopback (agent, status, gateway, controller, speaker --metrics) ...
    assert host_port("9473", "--metrics-address") == ("127.0.0.1", 9473)
    assert host_port("[::1]:9473", "--address") == ("::1", 9473)
    # ... or all addresses where the option says so (speaker --listen, kube webhook --listen)
    assert host_ports(["179", "[::]:1179"], "--listen", default_host="0.0.0.0") == (
        ("0.0.0.0", 179), ("::", 1179))
    assert host_ports(None, "--listen") == ()
    # left out or empty: not served
    assert optional_host_port(None, "--metrics") is None
    assert optional_host_port("", "--metrics") is None
    # no default host: a bare port is refused (dataplane --down names a backend)
    with pytest.raises(typer.Exit) as refused:
        host_port("8080", "--down", default_host=None)
    assert refused.value.exit_code == 2
