"""Logging setup for the long-running commands (agent, controller): one place, no globals."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str = "INFO", as_json: bool = False, stream: TextIO | None = None) -> None:
    """Configure the root logger of this process (called once by a composition root)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JSONFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # libraries that narrate every netlink message
    logging.getLogger("pyroute2").setLevel(max(logging.WARNING, root.level))
