"""The pods' configuration reaches the commands through the environment the chart sets
(issue 16): the namespace from the Downward API (``POD_NAMESPACE``), the password Secrets'
names (``VIPCAST_PASSWORD_SECRETS``); no namespace is hard-coded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vipcast.cli.main import app


def test_controller_and_speaker_take_namespace_and_secrets_from_env(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import vipcast.app.controller as controller_mod
    import vipcast.app.speaker as speaker_mod

    seen: dict[str, Any] = {}

    async def fake_controller(client: Any, config: Any, *args: Any) -> None:
        seen["controller"] = config

    async def fake_speaker(client: Any, options: Any, **kw: Any) -> int:
        seen["speaker"] = kw
        return 0

    monkeypatch.setattr(controller_mod, "run_controller", fake_controller)
    monkeypatch.setattr(speaker_mod, "run_speaker", fake_speaker)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        '{"apiVersion": "v1", "kind": "Config", "current-context": "c", "clusters": [{"name": '
        '"c", "cluster": {"server": "http://127.0.0.1:9"}}], "users": [{"name": "u", "user": '
        '{}}], "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}')
    env = {"POD_NAMESPACE": "lb-system", "VIPCAST_PASSWORD_SECRETS": "tor-pw, b,tor-pw",
           "NODE_NAME": "n1", "KUBECONFIG": str(kubeconfig)}
    runner = CliRunner()
    out = runner.invoke(app, ["controller"], env=env)
    assert out.exit_code == 0, out.output
    config = seen["controller"]
    assert config.election.namespace == "lb-system"
    assert config.password_secrets == ("b", "tor-pw")
    assert config.load_balancer_class is None
    out = runner.invoke(app, ["speaker", "--no-dataplane"], env=env)
    assert out.exit_code == 0, out.output
    assert seen["speaker"]["namespace"] == "lb-system"
    assert seen["speaker"]["password_secrets"] == ("b", "tor-pw")
