"""Feeds routes to a running gobgpd through its gRPC API (run inside the speaker's namespace).

Used by ``bench/bgp_routes.py`` for the GoBGP arm. GoBGP's own API definitions are read from
Debian's ``golang-github-osrg-gobgp-dev`` (``/usr/share/gocode/.../gobgp/api/*.proto``) and
compiled at start with ``grpcio-tools`` into a temporary folder; both come from the project's
``scripts/setup.sh`` and ``pyproject.toml`` dev extras.

    python bench/bgp_gobgp_feed.py --port 50051 --next-hop 10.0.0.2

Commands on stdin, one a line; each is answered on stdout with one line once GoBGP has
accepted it (``ok <seconds spent in the call>``):

    prepare <base> <count>    build the requests for count /32 host routes from base,
                              ``--batch`` paths per AddPathStream request (untimed)
    announce                  send the prepared requests in one AddPathStream call
    withdraw                  DeletePath of the whole IPv4 unicast family (one call)
    stop

Building the protobuf objects is left out of the timed part (``prepare``), so the trigger
measures GoBGP's own work: the stream and what the daemon does with it.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

API_DIR = Path("/usr/share/gocode/src/github.com/osrg/gobgp/api")


def compile_api(out: Path) -> tuple[Any, Any, Any]:
    """gobgp_pb2, attribute_pb2 and gobgp_pb2_grpc compiled from Debian's .proto files."""
    import grpc_tools  # type: ignore[import-untyped]
    from grpc_tools import protoc

    if not (API_DIR / "gobgp.proto").exists():
        raise SystemExit(
            f"{API_DIR}/gobgp.proto missing: apt-get install golang-github-osrg-gobgp-dev"
        )
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{API_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(API_DIR / "gobgp.proto"),
        str(API_DIR / "attribute.proto"),
        str(API_DIR / "capability.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on GoBGP's API files")
    sys.path.insert(0, str(out))
    return (
        importlib.import_module("gobgp_pb2"),
        importlib.import_module("attribute_pb2"),
        importlib.import_module("gobgp_pb2_grpc"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--next-hop", required=True)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    import grpc  # type: ignore[import-untyped]
    from google.protobuf.any_pb2 import Any as AnyMsg  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory(prefix="vc-gobgp-api-") as tmp:
        api, attr, rpc = compile_api(Path(tmp))
        channel = grpc.insecure_channel(f"127.0.0.1:{args.port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = rpc.GobgpApiStub(channel)
        family = api.Family(afi=api.Family.AFI_IP, safi=api.Family.SAFI_UNICAST)

        def packed(msg: Any) -> Any:
            a = AnyMsg()
            a.Pack(msg)
            return a

        origin = packed(attr.OriginAttribute(origin=0))
        next_hop = packed(attr.NextHopAttribute(next_hop=args.next_hop))
        requests: list[Any] = []
        print("ready", flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            t = time.monotonic()
            if words[0] == "prepare":
                base, count = ipaddress.IPv4Address(words[1]), int(words[2])
                paths = [
                    api.Path(
                        nlri=packed(attr.IPAddressPrefix(prefix_len=32, prefix=str(base + i))),
                        pattrs=[origin, next_hop],
                        family=family,
                    )
                    for i in range(count)
                ]
                requests = [
                    api.AddPathStreamRequest(table_type=api.GLOBAL, paths=paths[i : i + args.batch])
                    for i in range(0, len(paths), args.batch)
                ]
            elif words[0] == "announce":
                stub.AddPathStream(iter(requests), timeout=120)
            elif words[0] == "withdraw":
                stub.DeletePath(
                    api.DeletePathRequest(table_type=api.GLOBAL, family=family), timeout=120
                )
            elif words[0] == "stop":
                break
            print(f"ok {time.monotonic() - t:.6f}", flush=True)
        channel.close()


if __name__ == "__main__":
    main()
