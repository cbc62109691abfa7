"""The plain block YAML that object files are made of, read without building a node graph.

``kubectl get -o yaml``, ``yaml.safe_dump`` and hand-written manifests are nearly always the
same few shapes: block mappings of ``key: value`` lines, block sequences of ``- `` entries
(indented under their key or not), plain or simply quoted one-line scalars, ``[]`` and ``{}``,
comment lines. Even with libyaml, PyYAML spends a Python call per node (a ``Node`` object, a
resolver call) before any value is built; for those shapes :func:`load_all` reads the lines
directly, and a document of the same shape as one met before (the same lines, the values
apart: 10,000 Services are a handful of shapes) with one call of a function made for that
shape: 3-4x less CPU than PyYAML with libyaml.

It is an exact shortcut or nothing: every scalar gets its tag from PyYAML's own resolver and
its value from PyYAML's own constructor (:class:`yaml.SafeLoader`), and anything outside the
shapes above (a tab, a character that is not printable ASCII, a block scalar, a multi-line or
escaped scalar, a flow collection with content, an anchor, alias, tag or directive, a complex
or quoted key, a comment after a value, any indentation the rules below do not expect, ...)
makes :func:`load_all` return None: the caller then parses the text with PyYAML
(:mod:`vipcast.sources.yaml_documents`), which gives the values, or the error with its line
and column. ``tests/foundation/test_yaml_block.py`` compares both on generated texts.

The rules, for a text whose every line fits :data:`_LINE` (``--- `` lines apart):

- a document is a block mapping at column 0, or a block sequence at column 0;
- a mapping's entries are at one column; a key with a value on its line is followed by a line
  at a column no deeper than the key's (a deeper one would continue a plain scalar);
- a key with no value is followed by a deeper line (its value: a mapping, a sequence, or, for
  a ``- `` entry, a scalar), by a ``- `` line at the key's column (a sequence not indented),
  or else by nothing or a line at the key's column or less (the value is null);
- ``- `` entries are at one column; the entry's content starts on its line (a scalar, or the
  first key of a mapping whose column is where that key starts) or on the deeper lines after
  it; an empty entry is null.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
from typing import Any

import yaml
from yaml.nodes import ScalarNode

#: a content line (not blank, not a comment): indent, an optional ``- `` entry (its content's
#: column follows from the spaces), an optional ``key:`` (a plain key of the characters object
#: keys use), the rest of the line (the value's text)
_LINE = re.compile(r"^(?! *(?:#|$))( *)(?:(-)( +|$))?(?:([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +|$))?"
                   r"(.*)", re.M)
#: the value text of a line, as :data:`_LINE` finds it (``rest`` when not empty): split on it,
#: a document is its shape (the text between the values) and its values
_VALUE = re.compile(r"^((?> *(?:-(?: +|$))?(?:[A-Za-z0-9_][A-Za-z0-9_./-]*:(?: +|$))?))(.+)",
                    re.M)
#: a document start line (``---`` alone)
_START = re.compile(r"^--- *$", re.M)
#: a plain scalar without anything that would end it early, continue it, or make it more than
#: a plain string or an implicitly typed scalar: no ``#``, no ``: ``, no ``:`` or space at the
#: end
_PLAIN = re.compile(r"(?:[A-Za-z0-9_./~+]|-(?=[0-9.]))(?:[^#:]|:(?! |$))*(?<![ :])")
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_DOUBLE = re.compile(r'"([^"\\]*)"')
#: characters never read here: other than printable ASCII and the line feed (a tab, a CR, a
#: byte-order mark, any non-ASCII letter)
_REFUSE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_EMPTY = object()
#: the loader ``yaml_documents`` compares with: libyaml's when PyYAML was built with it
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"


class _Outside(Exception):
    """The text holds something this reader leaves to PyYAML."""


def load_all(text: str) -> list[object] | None:
    """The documents of ``text`` exactly as ``yaml.load_all(text, Loader=SafeLoader)`` gives
    them, or None when the text is not one this reader takes (see the module docstring)."""
    if not text.isascii() or _REFUSE.search(text) is not None or _BASE.yaml_path_resolvers:
        return None
    reader = _Reader()
    out: list[object] = []
    try:
        for number, part in enumerate(_START.split(text)):
            # before the first ``---``: a document only if there is content
            if number or _LINE.search(part) is not None:
                out.append(reader.document(part))
    except (_Outside, RecursionError):  # (a document nested deeper than Python recurses)
        return None
    return out


#: one line of a document: (column, is a ``- `` entry, key, value text, the line is the
#: content of a ``- `` entry)
_Line = tuple[int, bool, str, str, bool]


class _Anything:
    def __contains__(self, item: object) -> bool:
        return True


_ANY = _Anything()


class _Slot:
    """In a shape: the value of the document's ``index``-th value text."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Reader:
    def __init__(self) -> None:
        self.loader = _BASE("")
        #: scalar text (plain or quoted) -> its value (typed by the resolver, built by the
        #: constructor): immutable values only
        self.known: dict[str, object] = {}
        #: a document's shape -> the function building its value from its values (None: seen
        #: once, read line by line)
        self.shapes: dict[str, Callable[[list[object]], object] | None] = {}
        resolvers = self.loader.yaml_implicit_resolvers
        #: the first characters of plain scalars that may be typed (everything, when a
        #: resolver was added for any first character)
        self.typed: Container[str] = (
            _ANY if None in resolvers else frozenset(k for k in resolvers if k is not None))
        #: in :meth:`_shape`: how many value texts were met
        self.slots = -1

    def document(self, text: str) -> object:
        """One document's value. Documents of a shape met before (their lines, keys and
        indents alike, the value texts apart) are built by one function made for that shape
        the second time it is met."""
        if "#" in text:  # a comment (or a quoted '#'): line by line
            return self._document(self.lines_of(text))
        # split on the value texts: (between, a value line's indent/dash/key, its value)*: the
        # shape keeps the keys of value lines too (two documents differing only in such a
        # key are two shapes)
        pieces = _VALUE.split(text)
        shape = "\0".join(piece for i, piece in enumerate(pieces) if i % 3 != 2)
        if shape not in self.shapes:
            self.shapes[shape] = None
            return self._document(self.lines_of(text))
        build = self.shapes[shape]
        texts = pieces[2::3]
        known, scalar = self.known, self._scalar
        values = [v if (v := known.get(t, _EMPTY)) is not _EMPTY else scalar(t) for t in texts]
        if build is None:
            build = self.shapes[shape] = self._shape(text, len(texts))
        return build(values)

    def _shape(self, text: str, count: int) -> Callable[[list[object]], object]:
        """A function building the value of a document shaped as ``text`` from its values."""
        self.slots = 0
        try:
            tree = self._document(self.lines_of(text))
        finally:
            slots, self.slots = self.slots, -1
        if slots != count:  # pragma: no cover - _VALUE and _LINE find the same value texts
            raise _Outside
        constants: list[object] = []

        def source(value: object) -> str:
            if isinstance(value, _Slot):
                return f"v[{value.index}]"
            if value is None:
                return "None"
            if isinstance(value, dict):
                entries = []
                for key, item in value.items():
                    constants.append(key)
                    entries.append(f"c[{len(constants) - 1}]: {source(item)}")
                return "{" + ", ".join(entries) + "}"
            assert isinstance(value, list)
            return "[" + ", ".join(source(item) for item in value) + "]"

        code = f"lambda v: {source(tree)}"
        # the code is ours: subscripts of v and c only, no text of the document in it
        try:
            build: Callable[[list[object]], object] = eval(
                code, {"__builtins__": {}, "c": constants})
        except (SyntaxError, MemoryError):  # nested too deep for Python's parser
            raise _Outside from None
        return build

    @staticmethod
    def lines_of(text: str) -> list[_Line]:
        lines: list[_Line] = []
        append = lines.append
        for indent, dash, gap, key, rest in _LINE.findall(text):
            col = len(indent)
            if dash:
                append((col, True, "", "", False))
                if key or rest:
                    append((col + 1 + len(gap), False, key, rest, True))
            else:
                append((col, False, key, rest, False))
        return lines

    def _document(self, lines: list[_Line]) -> object:
        if not lines:
            return None
        if lines[0][0] != 0:
            raise _Outside
        value, at = self._node(lines, 0)
        if at != len(lines):
            raise _Outside
        return value

    def _node(self, lines: list[_Line], at: int) -> tuple[object, int]:
        col, dash, key, rest, entry = lines[at]
        if dash:
            return self._sequence(lines, at, col)
        if key:
            return self._mapping(lines, at, col)
        if not entry:
            raise _Outside  # a scalar on a line of its own (a plain scalar's continuation)
        value = self._value(rest)
        at += 1
        if at < len(lines) and lines[at][0] >= col:
            raise _Outside
        return value, at

    def _mapping(self, lines: list[_Line], at: int, col: int) -> tuple[dict[Any, object], int]:
        end = len(lines)
        known = self.known
        mapping: dict[Any, object] = {}
        while at < end:
            line_col, dash, key, rest, _entry = lines[at]
            if line_col != col:
                if line_col > col:
                    raise _Outside
                break
            if dash or not key:
                raise _Outside
            name = known.get(key, _EMPTY)
            if name is _EMPTY:
                name = self._scalar(key)
            at += 1
            if rest:
                mapping[name] = self._value(rest)
                continue
            if at < end:
                next_col, next_dash = lines[at][0], lines[at][1]
                if next_col > col:
                    mapping[name], at = self._node(lines, at)
                    continue
                if next_col == col and next_dash:
                    mapping[name], at = self._sequence(lines, at, col)
                    continue
            mapping[name] = None
        return mapping, at

    def _sequence(self, lines: list[_Line], at: int, col: int) -> tuple[list[object], int]:
        end = len(lines)
        items: list[object] = []
        while at < end:
            line_col, dash = lines[at][0], lines[at][1]
            if line_col != col:
                if line_col > col:
                    raise _Outside
                break
            if not dash:
                break  # the mapping this sequence is the value of (not indented) goes on
            at += 1
            if at < end and lines[at][0] > col:
                item, at = self._node(lines, at)
                items.append(item)
            else:
                items.append(None)
        return items, at

    def _value(self, text: str) -> object:
        """A value's text as its value, or (in :meth:`_shape`) as a slot."""
        if self.slots >= 0:
            self.slots += 1
            return _Slot(self.slots - 1)
        value = self.known.get(text, _EMPTY)
        return self._scalar(text) if value is _EMPTY else value

    def _scalar(self, text: str) -> object:
        """The value of a scalar's text (a new ``[]`` or ``{}`` each time)."""
        value = self.known.get(text, _EMPTY)
        if value is not _EMPTY:
            return value
        if text[-1] == " ":  # blanks after a value are not part of it
            return self._scalar(text.rstrip(" "))
        first = text[0]
        if first == "'":
            match = _SINGLE.fullmatch(text)
            if match is None:
                raise _Outside
            value = match.group(1).replace("''", "'")
        elif first == '"':
            match = _DOUBLE.fullmatch(text)
            if match is None:
                raise _Outside
            value = match.group(1)
        elif text == "[]":
            return []
        elif text == "{}":
            return {}
        elif _PLAIN.fullmatch(text) is None:
            raise _Outside
        elif first not in self.typed:  # no implicit resolver for its first character: a str
            value = text
        else:
            loader = self.loader
            tag = loader.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
            if tag == _STR_TAG:
                value = text
            else:
                constructor = loader.yaml_constructors.get(tag)
                if constructor is None:
                    raise _Outside
                value = constructor(loader, ScalarNode(tag, text))
        self.known[text] = value
        return value
