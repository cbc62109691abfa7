"""HAProxy's runtime API (the stats socket at level admin) and its master CLI, over UNIX sockets.

Each call opens the socket, sends one command and reads the answer until HAProxy closes the
connection (non-interactive mode).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


class RuntimeError_(Exception):
    """The socket could not be reached or closed early."""


async def command(socket_path: str, line: str, timeout: float = 5.0) -> str:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(socket_path)
            try:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                data = await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        raise RuntimeError_(f"{socket_path}: {exc or type(exc).__name__}") from exc
    return data.decode(errors="replace")


@dataclass(frozen=True)
class ServerState:
    backend: str
    name: str
    address: str
    port: int
    weight: int
    #: srv_admin_state bits: 0x01 forced maintenance, 0x08 drain (see HAProxy's management doc)
    admin: int

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin & 0x01)


async def servers(socket_path: str) -> list[ServerState]:
    """Every server of every backend (``show servers state``)."""
    text = await command(socket_path, "show servers state")
    out: list[ServerState] = []
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("# be_id"):
            header = line[2:].split()
            continue
        if not line or line.startswith("#") or not header or (line[0] == "1" and " " not in line):
            continue
        parts = line.split()
        if len(parts) < len(header):
            continue
        row = dict(zip(header, parts, strict=False))
        out.append(ServerState(row["be_name"], row["srv_name"], row["srv_addr"],
                               int(row["srv_port"]), int(row["srv_uweight"]),
                               int(row["srv_admin_state"])))
    return out


async def current_sessions(socket_path: str, backend: str, server: str) -> int:
    """Connections a server holds now (``show stat`` scur), 0 when it is not listed."""
    text = await command(socket_path, "show stat")
    lines = text.splitlines()
    if not lines:
        return 0
    header = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == backend and row.get("svname") == server:
            return int(row.get("scur") or 0)
    return 0
