"""The worker process of :mod:`vipcast.sources.yaml_split`: parse stdin, documents to stdout.

Kept apart so the worker imports nothing but PyYAML and the loader (an interpreter start and
these imports are the ~40 ms a part pays before it parses).
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import sys

import yaml

from vipcast.sources.yaml_documents import load_all

#: the first byte of a worker's output: how the rest is written
MARSHAL, PICKLE, FAILED = b"m", b"p", b"!"


def main() -> int:
    """Parse stdin's text (UTF-8), write its documents to stdout: :data:`MARSHAL` and
    marshal's bytes (values shared through aliases stay shared), :data:`PICKLE` and pickle's
    for values marshal does not carry (timestamps), or :data:`FAILED` when the text raises."""
    gc.disable()  # a short-lived process building acyclic values: nothing for it to free
    text = sys.stdin.buffer.read().decode()
    try:
        docs = load_all(text)
    except yaml.YAMLError:
        sys.stdout.buffer.write(FAILED)
        return 0
    try:
        data = MARSHAL + marshal.dumps(docs)
    except ValueError:  # a datetime or date: not one of marshal's types
        import pickle

        data = PICKLE + pickle.dumps(docs, protocol=pickle.HIGHEST_PROTOCOL)
    with contextlib.suppress(BrokenPipeError):  # the caller gave up on this part
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0
