"""``python -m vipcast.app.l2_standalone`` refuses bad input in one line before anything starts:
the option and the value named, exit status 2, no traceback; ``HOST:PORT`` values through the
project's one parser (``spec.addresses.parse_host_port``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vipcast.app.l2_standalone import build, main, parse_args
from vipcast.runtime.membership import DEFAULT_PORT

BASE = ["--node", "a", "--interface", "lo"]


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--bind", "1.2.3.4:99999"], ["--bind", "'1.2.3.4:99999'", "port '99999'"]),
        (["--bind", "nonsense"], ["--bind", "'nonsense'", "not a valid IP address"]),
        (["--bind", "[::1"], ["--bind", "'[::1'"]),
        (["--bind", ""], ["--bind", "empty address"]),
        (["--peer", "b"], ["--peer", "'b'", "NAME=HOST[:PORT]"]),
        (["--peer", "=192.0.2.2"], ["--peer", "'=192.0.2.2'", "NAME=HOST[:PORT]"]),
        (["--peer", "b=192.0.2.2:x"], ["--peer", "'192.0.2.2:x'", "port 'x'"]),
        (["--peer", "b=host.example"], ["--peer", "'host.example'", "not a valid IP address"]),
        (["--peer", "b=192.0.2.2", "--peer", "b=192.0.2.3"], ["--peer", "twice"]),
        (["--peer", "a=192.0.2.2"], ["--peer", "'a'", "--node"]),
        (["--vip", "nope"], ["--vip", "'nope'", "not a valid IP address"]),
    ],
)
def test_a_bad_option_is_one_line_naming_it_and_exit_2(
    extra: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*BASE, *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vipcast-l2: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


def test_what_the_options_refer_to_is_checked_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIPCAST_L2_KEY", raising=False)
    cases = [
        (["--peer", "b=192.0.2.2"], ["--peer", "membership key", "--key-file"]),
        (["--peer", "b=192.0.2.2", "--key-file", str(tmp_path / "missing")],
         ["--key-file", str(tmp_path / "missing"), "No such file"]),
        (["--candidates-file", str(tmp_path)], ["--candidates-file", str(tmp_path)]),
    ]  # fmt: skip
    for extra, needles in cases:
        with pytest.raises(SystemExit) as exc:
            main([*BASE, *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        for needle in needles:
            assert needle in err, (needle, err)


def test_good_values_parse_through_the_one_parser(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 32)
    args = parse_args([*BASE, "--bind", "[::1]:7000", "--peer", "b=192.0.2.2",
                       "--peer", "c=[2001:db8::3]:7001", "--vip", "192.0.2.50",
                       "--key-file", str(key)])  # fmt: skip
    config, plan = build(args)
    assert config.bind == ("::1", 7000)
    assert dict(config.peers) == {"b": ("192.0.2.2", DEFAULT_PORT), "c": ("2001:db8::3", 7001)}
    assert [o.ip for o in plan.l2] == ["192.0.2.50"]
    assert parse_args(BASE).bind == ("0.0.0.0", DEFAULT_PORT)


def test_python_dash_m_prints_no_traceback() -> None:
    """The real entry point, as a user runs it."""
    run = subprocess.run(
        [sys.executable, "-m", "vipcast.app.l2_standalone", *BASE, "--bind", "1.2.3.4:99999"],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )  # fmt: skip
    assert run.returncode == 2, run
    assert run.stderr == (
        "vipcast-l2: error: argument --bind: '1.2.3.4:99999': "
        "port '99999' is not a number from 0 to 65535\n"
    )
    assert run.stdout == ""
