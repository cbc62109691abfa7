"""A frozen dataclass's ``__init__`` that fills the instance dict in one go.

The ``__init__`` :func:`dataclasses.dataclass` generates for a frozen class sets each field
through ``object.__setattr__`` (``__setattr__`` itself raises), several times slower than
storing into the instance's ``__dict__``. The planner builds some 150,000 small values for
10,000 Services on 50 nodes, where that difference shows; :func:`fast_init` replaces the
generated ``__init__`` of such a class with one that stores the fields straight into
``self.__dict__``, generated from :func:`dataclasses.fields` as the dataclass generates its own
(the source text of one ``def``, compiled with ``exec``)::

    @fast_init
    @dataclass(frozen=True)
    class Route:
        prefix: str
        peers: tuple[str, ...] = ()

It keeps everything the caller sees of the dataclass's ``__init__``: the parameters in the
same order and of the same kinds (``kw_only`` fields after ``*``), the same defaults, a new
object from ``default_factory`` at each call, ``__post_init__`` called last, and the
``TypeError`` of a missing or unknown argument. Equality, order, hash, ``repr``,
:func:`dataclasses.replace` and pickling are the dataclass's own and unchanged. A class it
cannot serve (not a dataclass, one with ``init=False``, an ``InitVar`` or an ``init=False``
field) is refused with a ``TypeError`` when it is decorated, never at a call.

Applied over ``@dataclass``, it is typed ``type[T] -> type[T]``: the type checker keeps seeing
the dataclass's own signature. The lowest layer (pyproject.toml's contracts): it imports
nothing of vipcast, so the allocator's values (``alloc``) and the planner's (``core``) use it
alike.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

T = TypeVar("T")

class _Factory:
    """The default of a ``default_factory`` parameter: "make a new one" (never stored)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()
#: factories whose new object is a literal (``{}`` builds a dict without calling ``dict``)
_LITERALS: dict[object, str] = {dict: "{}", list: "[]"}
#: the generated code's own names start with this; a field may not
_OWN = "_fi_"


def fast_init(cls: type[T]) -> type[T]:
    """``cls`` (a dataclass) with an ``__init__`` that fills ``self.__dict__`` directly and
    otherwise takes and does what the dataclass's generated one does (see the module)."""
    fields = _init_fields(cls)
    positional = [f for f in fields if not f.kw_only]
    keyword = [f for f in fields if f.kw_only]
    namespace: dict[str, Any] = {f"{_OWN}FACTORY": _FACTORY}
    me = f"{_OWN}self" if any(f.name == "self" for f in fields) else "self"
    params = [me, *(_param(f, namespace) for f in positional)]
    if keyword:
        params += ["*", *(_param(f, namespace) for f in keyword)]
    lines = [f"def __init__({', '.join(params)}):", f"    {_OWN}d = {me}.__dict__"]
    for f in fields:
        value = f.name
        if f.default_factory is not dataclasses.MISSING:
            made = _LITERALS.get(f.default_factory, f"{_OWN}factory_{f.name}()")
            value = f"{made} if {f.name} is {_OWN}FACTORY else {f.name}"
        lines.append(f"    {_OWN}d[{f.name!r}] = {value}")
    if hasattr(cls, "__post_init__"):
        lines.append(f"    {me}.__post_init__()")
    exec("\n".join(lines), namespace)  # the text of one def, built from field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(getattr(cls.__dict__["__init__"], "__annotations__", {}))
    _same_signature(cls, init)
    setattr(cls, "__init__", init)  # noqa: B010 - mypy: assigning to a method is refused
    return cls


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields the ``__init__`` takes, in declaration order; a class this module cannot
    serve is refused (``TypeError`` naming the class and why)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"fast_init: {cls!r} is not a dataclass (apply it over @dataclass)")
    if not getattr(cls, "__dataclass_params__").init:  # noqa: B009 - not in typeshed
        raise TypeError(f"fast_init: {cls.__qualname__} is a dataclass with init=False")
    fields = list(dataclasses.fields(cls))
    for f in fields:
        if not f.init:
            raise TypeError(f"fast_init: {cls.__qualname__}.{f.name} is an init=False field"
                            " (not supported: drop fast_init or the init=False)")
        if f.name.startswith(_OWN):
            raise TypeError(f"fast_init: {cls.__qualname__}.{f.name}: field names starting"
                            f" with {_OWN!r} are the generated code's own")
    return fields


def _param(f: dataclasses.Field[Any], namespace: dict[str, Any]) -> str:
    """The parameter of field ``f``; its default (or factory) is put into ``namespace``."""
    if f.default_factory is not dataclasses.MISSING:
        namespace[f"{_OWN}factory_{f.name}"] = f.default_factory
        return f"{f.name}={_OWN}FACTORY"
    if f.default is not dataclasses.MISSING:
        namespace[f"{_OWN}default_{f.name}"] = f.default
        return f"{f.name}={_OWN}default_{f.name}"
    return f.name


def _same_signature(cls: type, init: Any) -> None:
    """Refuse ``cls`` unless ``init`` takes exactly what the dataclass's ``__init__`` takes
    (an ``InitVar`` is a parameter of the dataclass's and no field: it is refused here)."""
    theirs = list(inspect.signature(cls.__dict__["__init__"]).parameters.values())[1:]
    ours = list(inspect.signature(init).parameters.values())[1:]

    def shape(params: list[inspect.Parameter]) -> list[tuple[str, Any, bool]]:
        return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in params]

    if shape(theirs) != shape(ours):
        raise TypeError(
            f"fast_init: {cls.__qualname__}'s dataclass __init__ takes "
            f"({', '.join(map(str, theirs))}), not the fields "
            f"({', '.join(p.name for p in ours)}): InitVar fields are not supported")
