"""Standalone L2 responder, one process per node (used by tests, benchmarks and small setups)::

    python -m vipcast.app.l2_standalone --node a --interface eth0 --vip 192.0.2.50 \\
        --peer b=192.0.2.2 --peer c=192.0.2.3 --key-file /etc/vipcast/l2.key

Every VIP gets the candidates given by ``--candidates`` (default: all members, sorted). On each
ownership change one JSON line ``{"event": "owned", "t": <unix time>, "ips": [...]}`` goes to
stdout; SIGUSR1 prints the status; SIGTERM/SIGINT stop gracefully (peers take over at once).

Bad input ends the process before anything starts: one line on standard error naming the
option and the value (``vipcast-l2: error: argument --bind: '1.2.3.4:99999': port '99999' is
not a number from 0 to 65535``), exit status 2. ``HOST:PORT`` values are read by the project's
one parser (:func:`vipcast.spec.addresses.parse_host_port`, through
:mod:`vipcast.lab.arguments`); hosts are IP addresses (the membership binds and sends UDP to
them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vipcast.core.desired import L2Ownership, NodePlan
from vipcast.lab.arguments import OneLineParser, endpoint, ip_address
from vipcast.obs.registry import CollectorRegistry
from vipcast.proto.membership import suspicion_min_problem
from vipcast.runtime.l2.driver import L2Config, L2Runtime
from vipcast.runtime.l2.responder import AnnounceSchedule
from vipcast.runtime.membership import DEFAULT_PORT


def _suspicion_min(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    problem = suspicion_min_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def _endpoint(text: str) -> tuple[str, int]:
    return endpoint(text, DEFAULT_PORT)


def _peer(text: str) -> tuple[str, tuple[str, int]]:
    """``NAME=HOST[:PORT]``."""
    name, sep, address = text.partition("=")
    if not sep or not name.strip() or not address.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=HOST[:PORT]")
    return name.strip(), _endpoint(address)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="vipcast-l2", description=__doc__.split("\n")[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--interface", action="append", default=[], required=True)
    parser.add_argument("--vip", action="append", default=[], type=ip_address)
    parser.add_argument("--candidates", help="comma-separated preference order for every VIP")
    parser.add_argument(
        "--candidates-file",
        type=Path,
        help="read the preference order from this file (comma-separated) at start and on SIGHUP",
    )
    parser.add_argument("--release-timeout", type=float, default=3.0)
    parser.add_argument(
        "--suspicion-min",
        type=_suspicion_min,
        help="membership suspicion floor, seconds (0.05-30; default 0.12 up to 16 members)",
    )
    parser.add_argument(
        "--peer", action="append", default=[], type=_peer, help="NAME=HOST[:PORT]"
    )
    parser.add_argument("--bind", default=("0.0.0.0", DEFAULT_PORT), type=_endpoint)
    parser.add_argument("--key-file", type=Path)
    schedule = AnnounceSchedule()
    parser.add_argument("--burst", type=int, default=schedule.burst)
    parser.add_argument("--burst-interval", type=float, default=schedule.burst_interval)
    parser.add_argument("--announce-period", type=float, default=schedule.period)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    names = [name for name, _ in args.peer]
    if len(set(names)) != len(names):
        parser.error(f"argument --peer: a name given twice: {sorted(names)}")
    if args.node in names:
        parser.error(f"argument --peer: {args.node!r} is this node (--node)")
    return args


def build(args: argparse.Namespace) -> tuple[L2Config, NodePlan]:
    """The runtime's config and plan; ValueError names the option of a bad value."""
    peers = dict(args.peer)
    key = b""
    if args.key_file is not None:
        try:
            key = args.key_file.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"--key-file {str(args.key_file)!r}: {exc.strerror}") from None
    elif "VIPCAST_L2_KEY" in os.environ:
        key = os.environ["VIPCAST_L2_KEY"].encode()
    if peers and not key:
        raise ValueError("--peer needs the membership key: --key-file FILE or VIPCAST_L2_KEY")
    config = L2Config(
        node=args.node,
        peers=peers,
        key=key,
        bind=args.bind,
        schedule=AnnounceSchedule(args.burst, args.burst_interval, args.announce_period),
        default_interfaces=tuple(args.interface),
        release_timeout=args.release_timeout,
        suspicion_min=args.suspicion_min,
    )
    text = args.candidates
    if args.candidates_file is not None:
        try:
            text = args.candidates_file.read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"--candidates-file {str(args.candidates_file)!r}: {exc.strerror}"
            ) from None
    candidates = tuple(text.split(",")) if text else tuple(sorted({args.node, *peers}))
    ownerships = tuple(
        L2Ownership(vip, tuple(args.interface), candidates[0], candidates) for vip in args.vip
    )
    return config, NodePlan(node=args.node, l2=ownerships)


def _emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


async def run(args: argparse.Namespace, built: tuple[L2Config, NodePlan] | None = None) -> None:
    config, plan = built or build(args)
    runtime = L2Runtime(
        config,
        CollectorRegistry(),
        on_ownership=lambda owned: _emit("owned", ips=sorted(owned)),
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: _emit("status", status=runtime.status()))
    await runtime.apply(plan)

    pending: set[asyncio.Task[None]] = set()

    def reload() -> None:
        # a plan change: the preference order re-read (an unreadable file changes nothing)
        try:
            _, new_plan = build(args)
        except ValueError as exc:
            _emit("reload_failed", error=str(exc))
            return
        applying = loop.create_task(runtime.apply(new_plan))
        pending.add(applying)
        applying.add_done_callback(pending.discard)
        _emit("plan", candidates=list(new_plan.l2[0].candidates) if new_plan.l2 else [])

    loop.add_signal_handler(signal.SIGHUP, reload)
    await runtime.start()
    _emit("started", node=config.node)
    await stopping.wait()
    await runtime.stop(graceful=True)
    _emit("stopped", node=config.node)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        built = build(args)
    except ValueError as exc:
        print(f"vipcast-l2: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(run(args, built))


if __name__ == "__main__":
    main()
