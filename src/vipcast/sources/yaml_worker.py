"""The worker process of :mod:`vipcast.sources.yaml_split`: parse texts, documents back.

Kept apart so the worker imports nothing but PyYAML and the loader (an interpreter start and
these imports are the ~40 ms a worker pays before it parses).
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import sys

import yaml

from vipcast.sources.yaml_documents import load_all

#: the first byte of a worker's output: how the rest is written
MARSHAL, PICKLE = b"m", b"p"


def main() -> int:
    """Parse the texts on stdin (a marshalled list of str), write to stdout one result per
    text — its documents, or None when it raises: :data:`MARSHAL` and marshal's bytes (values
    shared through aliases stay shared), or :data:`PICKLE` and pickle's when a value is one
    marshal does not carry (a timestamp)."""
    gc.disable()  # a short-lived process building acyclic values: nothing for it to free
    texts = marshal.loads(sys.stdin.buffer.read())
    results: list[list[object] | None] = []
    for text in texts:
        try:
            results.append(load_all(text))
        except yaml.YAMLError:
            results.append(None)
    try:
        data = MARSHAL + marshal.dumps(results)
    except ValueError:  # a datetime or date: not one of marshal's types
        import pickle

        data = PICKLE + pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    with contextlib.suppress(BrokenPipeError):  # the caller gave up on these texts
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0
