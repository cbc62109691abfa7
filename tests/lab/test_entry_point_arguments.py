"""The lab's helper processes (``python -m vipcast.lab...``) refuse a bad port or address in
one line naming the option and the value, exit status 2, no traceback (the same values the
project's one address parser reads everywhere: ``vipcast.lab.arguments``)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from vipcast.lab.arguments import endpoint, ip_address, port


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["vipcast.lab.http_echo", "--id", "x", "--bind", "nonsense"],
         "http_echo.py: error: argument --bind: 'nonsense' is not a valid IP address\n"),
        (["vipcast.lab.workload", "serve", "--host", "", "--name", "w", "--udp-port", "-1"],
         "python -m vipcast.lab.workload serve: error: argument --udp-port: "
         "port '-1' is not a number from 0 to 65535\n"),
        (["vipcast.lab.proxy_backend", "--id", "x", "--port", "http"],
         "proxy_backend.py: error: argument --port: "
         "port 'http' is not a number from 0 to 65535\n"),
        (["vipcast.lab.workload", "serve", "--host", "", "--name", "w", "--port", "70000"],
         "python -m vipcast.lab.workload serve: error: argument --port: "
         "port '70000' is not a number from 0 to 65535\n"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_and_exit_2(argv: list[str], wanted: str) -> None:
    run = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert (run.returncode, run.stderr, run.stdout) == (2, wanted, "")


def test_the_values_read() -> None:
    assert port("0") == 0 and port(" 65535 ") == 65535
    assert ip_address("2001:DB8::1") == "2001:db8::1"
    assert endpoint("[2001:db8::1]:80", 7946) == ("2001:db8::1", 80)
    assert endpoint("192.0.2.1", 7946) == ("192.0.2.1", 7946)
    for bad in ("65536", "", "1e3"):
        with pytest.raises(argparse.ArgumentTypeError, match="port"):
            port(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"'example\.com' is not a valid IP"):
        endpoint("example.com:80", 7946)
