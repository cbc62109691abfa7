"""``vipcast agent`` from object files: the node's composition root, started so that a start
from the start cache sends its first routes before the rest of the agent is imported.

Without ``--cache-dir`` (or with the data plane, which verifies before anything is announced)
this is :func:`vipcast.app.node.run_node`. With it and ``--no-dataplane``,
:func:`vipcast.app.start_early.start_early` runs first on the loop (it imports only the BGP
speaker and the plan's value types), then the agent's modules are imported in a worker thread
while the sessions open and the UPDATEs go out, and the agent adopts the running speaker.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from vipcast.app.start_early import EarlyStart, StartArgs, routes_out, start_early

if TYPE_CHECKING:
    from vipcast.app.agent_values import AgentOptions
    from vipcast.sources.early_parse import EarlyParse


def run_agent_command(options: Callable[[], AgentOptions], *, start: StartArgs | None,
                      config_paths: tuple[Path, ...] = (),
                      dataplane_enabled: bool, membership_key_file: Path | None,
                      gateway_workdir: Path | None, gateway_admin_port: int = 19000,
                      gateway_concurrency: int | None = None) -> int:
    """``vipcast agent``: the node from object files until it stops; the exit code.
    ``options`` makes the agent's options (it imports the agent: called once the early start
    ran); ``start``: what the early start needs (None: no start cache). The membership key is
    the file's text, else ``$VIPCAST_MEMBERSHIP_KEY``; with a gateway work directory, the
    node's Envoy is found and run too. Without the start cache's routes, the object files at
    ``config_paths`` are parsed by worker processes while the agent's modules are imported
    (:mod:`vipcast.sources.early_parse`; the first load validates them as always)."""

    async def main() -> int:
        started: EarlyStart | None = None
        if start is not None and not dataplane_enabled:
            started = await start_early(start)
            await routes_out(started)
        # the start cache may still serve the first load where the early start did not try it
        parsing: EarlyParse | None = None
        if config_paths and (start is None if dataplane_enabled
                             else started is None or started.early is None):
            # here: a start from the start cache imports no YAML before its routes are out
            from vipcast.sources.early_parse import start_parse

            parsing = start_parse(config_paths)
        try:
            # the agent's modules, off the loop: the early speaker keeps its sessions meanwhile
            node = await asyncio.to_thread(import_module, "vipcast.app.node")
            key = os.environ.get("VIPCAST_MEMBERSHIP_KEY", "")
            if membership_key_file is not None:
                key = membership_key_file.read_text().strip()
            settings = options()
            gateway = None
            if gateway_workdir is not None:
                from vipcast.app.envoy_gateway import found_settings

                gateway = found_settings(settings.node, gateway_workdir, gateway_admin_port,
                                         gateway_concurrency)
        except BaseException:
            if parsing is not None:
                parsing.close()
            if started is not None and started.early is not None:
                await started.speaker.stop("vipcast agent stopping")
            raise
        return int(await node.run_node(settings, dataplane_enabled=dataplane_enabled,
                                       membership_key=key.encode(), gateway=gateway,
                                       early=started, parsing=parsing))

    return asyncio.run(main())
