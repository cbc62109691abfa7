"""The object files parsed by worker processes while the agent imports its modules.

A first start without a cache spends its first half second importing the agent (pydantic's
object model, the planner, the consumers) on one CPU while the other is idle, and only then
reads and parses the files. :func:`start_parse` is called before those imports
(:mod:`vipcast.app.agent_command`): it reads the object files and hands their texts to worker
processes (:func:`vipcast.sources.yaml_split.start`) — it imports only PyYAML and the parser,
no object model. The first load then takes a file's documents from here
(:meth:`EarlyParse.documents`) only when the file's bytes are the very bytes parsed; any other
file, a file that changed meanwhile, or one whose parse failed is read and parsed as always
(with the error, line and column a serial parse gives). Nothing else changes: the documents
are validated as a whole config, and a problem anywhere refuses it before anything is
announced (:class:`vipcast.sources.files.ObjectFiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vipcast.sources import yaml_split
from vipcast.sources.file_set import config_files, text_of


class EarlyParse:
    """Files being parsed (see the module): by name, the bytes read and, once
    :meth:`documents` is first asked, their documents."""

    def __init__(self, data: dict[str, bytes], parsing: yaml_split.Parsing) -> None:
        self._data = data
        self._names = list(data)
        self._parsing: yaml_split.Parsing | None = parsing
        self._docs: dict[str, list[object] | None] | None = None
        #: how many files' documents were taken from here
        self.used = 0

    def documents(self, name: str, data: bytes) -> list[object] | None:
        """The documents of file ``name`` if ``data`` are the bytes parsed and the parse
        succeeded (waits for the workers the first time); else None: parse it as always."""
        if self._data.get(name) != data:
            return None
        if self._docs is None:
            parsing, self._parsing = self._parsing, None
            results = parsing.result() if parsing is not None else []
            self._docs = dict(zip(self._names, results, strict=False))
        docs = self._docs.pop(name, None)
        if docs is not None:
            self.used += 1
        return docs

    def close(self) -> None:
        """Let go of the documents and stop any worker still running."""
        parsing, self._parsing = self._parsing, None
        if parsing is not None:
            parsing.close()
        self._docs = {}
        self._data = {}


def start_parse(paths: Sequence[Path], cpus: int | None = None) -> EarlyParse | None:
    """The object files under ``paths`` read now and parsed by worker processes (see the
    module); None when there is nothing worth a worker (small files, an unreadable or
    undecodable file: the load reports it) or no worker can be started."""
    files, issues = config_files(paths)
    if issues:
        return None
    data: dict[str, bytes] = {}
    texts: list[str] = []
    for path in files:
        name = str(path)
        if name in data:
            continue
        try:
            raw = path.read_bytes()
            texts.append(text_of(raw))
        except (OSError, UnicodeDecodeError):
            return None
        data[name] = raw
    parsing = yaml_split.start(texts, cpus)
    return EarlyParse(data, parsing) if parsing is not None else None
