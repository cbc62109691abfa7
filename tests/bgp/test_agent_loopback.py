"""The node agent end to end on loopback: files in, routes at a router speaker, reloads.

The "router" is a passive vipcast speaker on 127.0.0.3; the agent peers from 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from pathlib import Path

from bgp_objects import service_yaml
from typer.testing import CliRunner

from vipcast.app.agent import Agent, AgentOptions
from vipcast.cli.main import app as cli_app
from vipcast.proto.bgp import SessionConfig, State
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker

DEADLINE = 20.0

PEERS = """\
apiVersion: vipcast.io/v1beta1
kind: BGPPeer
metadata: {{name: rtr}}
spec:
  myASN: 4200000001
  peerASN: 65000
  peerAddress: 127.0.0.3
  peerPort: {port}
  sourceAddress: 127.0.0.2
  holdTime: 9s
  connectTime: 2s
---
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {{name: pool}}
spec:
  addresses: [198.51.100.0/28]
---
apiVersion: vipcast.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: adv}}
spec:
  communities: ["65000:7", "large:64512:1:2"]
---
apiVersion: v1
kind: Node
metadata: {{name: n1}}
"""

def write_config(directory: Path, port: int, services: list[str]) -> None:
    (directory / "base.yaml").write_text(PEERS.format(port=port))
    text = "---\n".join(service_yaml(name, [("10.244.1.10", "n1")]) for name in services)
    (directory / "services.yaml").write_text(text or "# none\n")


def received(router: Speaker) -> int:
    peer = router.peers().get("node")
    return peer.status().prefixes_received if peer else 0


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: bytes = response.read()
    return body


async def test_agent_announces_reloads_refuses_and_stops(tmp_path: Path) -> None:
    router = Speaker(listen=[("127.0.0.3", 0)], log=logging.getLogger("test.router"))
    await router.start()
    port = router.listen_ports[0]
    router.configure(
        [
            PeerSettings(
                name="node",
                address="127.0.0.2",
                session=SessionConfig(
                    local_asn=65000, peer_asn=4200000001, router_id="192.0.2.3", passive=True
                ),
            )
        ]
    )
    config = tmp_path / "config"
    config.mkdir()
    write_config(config, port, ["web", "api"])
    agent = Agent(
        AgentOptions(
            config_paths=(config,),
            node="n1",
            metrics_address=("127.0.0.1", 0),
            state_dir=tmp_path / "state",
            poll_interval=0.2,
        )
    )
    task = asyncio.create_task(agent.run(install_signals=False))
    try:
        await asyncio.wait_for(agent.started.wait(), DEADLINE)
        peer = lambda s: "node" in s.peers() and s.peers()["node"].state == State.ESTABLISHED  # noqa: E731
        assert await router.wait_for(peer, DEADLINE)
        assert await router.wait_for(lambda s: received(s) >= 2, DEADLINE)
        assert {r.prefix for r in agent.current.plan.bgp} == {  # type: ignore[union-attr]
            "198.51.100.0/32",
            "198.51.100.1/32",
        } or len(agent.current.plan.bgp) == 2  # type: ignore[union-attr]

        # status and metrics over HTTP, and the CLI rendering
        assert agent.metrics_bound is not None
        http_port = agent.metrics_bound[1]
        document = json.loads(await asyncio.to_thread(fetch, http_port, "/status"))
        assert document["peers"][0]["state"] == "Established"
        assert document["peers"][0]["prefixes_advertised"] == 2
        metrics = (await asyncio.to_thread(fetch, http_port, "/metrics")).decode()
        assert 'vipcast_bgp_session_up{address="127.0.0.3",peer="rtr"} 1.0' in metrics
        assert 'vipcast_bgp_prefixes_advertised{address="127.0.0.3",peer="rtr"} 2.0' in metrics
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["status", "--address", f"127.0.0.1:{http_port}"],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 0, result.output
        assert "Established" in result.output and "rtr" in result.output

        # a service goes away: its route is withdrawn after the file changes
        await asyncio.sleep(0.05)
        write_config(config, port, ["web"])
        assert await agent.speaker.wait_for(
            lambda s: s.status()[0].prefixes_advertised == 1, DEADLINE
        )

        # an invalid file is refused whole; the running config stays and the session stays up
        (config / "broken.yaml").write_text(
            "apiVersion: vipcast.io/v1beta1\nkind: BGPPeer\nmetadata: {name: bad}\n"
            "spec: {myASN: 1}\n"
        )
        for _ in range(100):
            if agent.last_error:
                break
            await asyncio.sleep(0.1)
        assert agent.last_error, "the broken file was not noticed"
        assert agent.speaker.status()[0].state == "Established"
        assert agent.speaker.status()[0].prefixes_advertised == 1

        # SIGHUP-style reload after fixing the file
        (config / "broken.yaml").unlink()
        agent.request_reload()
        for _ in range(100):
            if not agent.last_error:
                break
            await asyncio.sleep(0.1)
        assert not agent.last_error
    finally:
        agent.request_stop()
        assert await asyncio.wait_for(task, DEADLINE) == 0
    # the clean stop sent Cease/Administrative Shutdown and removed the GR marker
    assert await router.wait_for(
        lambda s: s.peers()["node"].status().notifications_received >= 1, DEADLINE
    )
    assert not (tmp_path / "state" / "agent-running").exists()
    await router.stop()


async def test_agent_refuses_invalid_config_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: vipcast.io/v1beta1\nkind: Nope\n")
    agent = Agent(AgentOptions(config_paths=(tmp_path,), node="n1"))
    assert await agent.run(install_signals=False) == 2


async def test_restart_marker_sets_restarting(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    write_config(config, 1, [])
    state = tmp_path / "state"
    state.mkdir()
    (state / "agent-running").write_text("12345")  # a previous agent was killed
    agent = Agent(
        AgentOptions(config_paths=(config,), node="n1", state_dir=state, poll_interval=0.2)
    )
    task = asyncio.create_task(agent.run(install_signals=False))
    await asyncio.wait_for(agent.started.wait(), DEADLINE)
    assert agent.restarting
    assert agent.current is not None
    assert all(p.session.restarting is False for p in agent.current.peers)  # GR not configured
    agent.request_stop()
    assert await asyncio.wait_for(task, DEADLINE) == 0
