"""The ExaBGP API process of the lab: log what ExaBGP tells us, relay commands to it.

ExaBGP runs this as ``python -m vipcast.lab.exabgp_relay EVENTS COMMANDS``. Every line ExaBGP
writes to our stdin (JSON-encoded updates, state changes, ...) is appended to the EVENTS file
and flushed. Every line written to the COMMANDS named pipe (``announce route ...``) is copied
to our stdout, which ExaBGP reads as API commands.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path


def relay_commands(fifo: Path) -> None:
    # O_RDWR keeps the pipe open with no writer, so reads block instead of seeing EOF
    fd = os.open(fifo, os.O_RDWR)
    with os.fdopen(fd, "r") as commands:
        for line in commands:
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
            sys.stdout.flush()


def main(argv: list[str]) -> int:
    events, fifo = Path(argv[1]), Path(argv[2])
    threading.Thread(target=relay_commands, args=(fifo,), daemon=True).start()
    with events.open("a") as out:
        for line in sys.stdin:
            out.write(line)
            out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
