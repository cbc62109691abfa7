"""YAML documents as Python values, PyYAML's safe loader semantics at a fraction of its cost.

PyYAML with libyaml parses and composes the node graph in C, but then builds the Python
values with its pure-Python constructor: for 10,000 Services that is three quarters of the
time to read the file (``bench/agent_routes.py``). :func:`load_all` keeps libyaml's composer
and PyYAML's resolver (so every scalar gets exactly the tag ``yaml.safe_load_all`` gives it)
and builds the values with one tight recursive function for what object files are made of:
mappings, sequences, strings, and the safe scalar tags (null, bool, int, float, timestamp,
binary), each converted by PyYAML's own constructor method. Anything rarer in a document (a
merge key ``<<``, a ``=`` key, a non-scalar key, ``!!set``/``!!omap``/``!!pairs``, a local
tag) sends that document through PyYAML's whole constructor instead, so the result, and any
error, is always what ``yaml.load_all(text, Loader=SafeLoader)`` returns.
``tests/foundation/test_yaml_documents.py`` checks that on generated documents.

Before any of that, the plain block YAML that object files are nearly always written in is
read without PyYAML's node graph at all (:mod:`vipcast.sources.yaml_block`: the same values,
~3.5x less CPU); a text it does not take comes here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vipcast.sources import yaml_block

#: libyaml's parser and composer when PyYAML was built with it, else the Python ones
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
#: the scalar tags whose SafeConstructor method is a plain function of the one node
_SCALARS = frozenset({
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary",
})
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"


class _Unusual(Exception):
    """The document holds something only PyYAML's whole constructor handles."""


class _Loader(_BASE):  # type: ignore[valid-type,misc]
    """The safe loader with a memo of plain-scalar tags, for a loader class without path
    resolvers (SafeLoader has none; :func:`load_all` checks). Without them BaseResolver gives
    a scalar that is not plain the default ``str`` tag, a plain one a tag that depends on its
    value alone, a sequence or a mapping the default tag; and there is nothing to track as the
    composer descends into a node and comes back, which libyaml's composer asks for every
    node: those two calls are bound to a C callable that ignores its arguments (no Python
    frame per node)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._plain: dict[str, str] = {}
        # on the instance, over BaseResolver's methods: {}.get(node, index) looks a key up in
        # an empty dict (returns ``index``, ignored), int() returns 0: both do nothing
        self.__dict__.update(descend_resolver={}.get, ascend_resolver=int)

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if not implicit[0]:
                return _STR  # quoted (or a plain scalar with a tag): BaseResolver's default
            tag = self._plain.get(value)
            if tag is None:
                tag = self._plain[value] = str(super().resolve(kind, value, implicit))
            return tag
        if kind is MappingNode:
            return _MAP
        if kind is SequenceNode:
            return _SEQ
        return str(super().resolve(kind, value, implicit))


def _builder(loader: _Loader) -> Callable[[Node], object]:
    """The value of one document's root node (raises _Unusual, see the module)."""
    scalar_ctors = {tag: loader.yaml_constructors[tag] for tag in _SCALARS}
    memo: dict[int, object] = {}  # collections by node id: aliases share one value

    def build(node: Node) -> object:
        kind = type(node)
        tag = node.tag
        if kind is ScalarNode:
            if tag == _STR:
                return node.value
            ctor = scalar_ctors.get(tag)
            if ctor is None:
                raise _Unusual
            return ctor(loader, node)
        done = memo.get(id(node))
        if done is not None:
            return done
        if kind is MappingNode and tag == _MAP:
            mapping: dict[object, object] = {}
            memo[id(node)] = mapping
            # a plain string key or value (nearly all of them) is taken here, not by a call
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode:
                    raise _Unusual
                key_tag = key_node.tag
                if key_tag == _STR:
                    key: object = key_node.value
                elif key_tag in (_MERGE, _VALUE):
                    raise _Unusual
                else:
                    key = build(key_node)
                if type(value_node) is ScalarNode and value_node.tag == _STR:
                    mapping[key] = value_node.value
                else:
                    mapping[key] = build(value_node)
            return mapping
        if kind is SequenceNode and tag == _SEQ:
            items: list[object] = []
            memo[id(node)] = items
            for item in node.value:
                if type(item) is ScalarNode and item.tag == _STR:
                    items.append(item.value)
                else:
                    items.append(build(item))
            return items
        raise _Unusual

    return build


def load_all(text: str) -> list[object]:
    """Every document of ``text`` as ``yaml.load_all(text, Loader=SafeLoader)`` gives it
    (``None`` for an empty document); raises what it raises (``yaml.YAMLError``)."""
    if _BASE.yaml_path_resolvers:  # added by yaml.add_path_resolver: PyYAML's own way
        return list(yaml.load_all(text, Loader=_BASE))
    block = yaml_block.load_all(text)  # plain block YAML: read without PyYAML's nodes
    if block is not None:
        return block
    loader = _Loader(text)
    out: list[object] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                out.append(None)
                continue
            try:
                value = _builder(loader)(node)
            except _Unusual:
                value = loader.construct_document(node)
            out.append(value)
    finally:
        loader.dispose()
    return out
