"""The hand-written constructors of the planner's hot values against their dataclass fields.

:class:`~vipcast.core.desired.Backend`, ``NatRule``, ``BGPRoute``, ``L2Ownership`` and the
allocator's ``ServiceInput`` and ``Assignment`` fill their instance dict directly (cheaper
than the generated ``__init__`` of a frozen dataclass); these tests keep each constructor in
step with the fields: the same names, in declaration order, with the same defaults, every
field set, and the dataclass behaviour (frozen, equality, order, hash, ``replace``,
``repr``) unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest

from vipcast.alloc.model import Assignment, Reason, ServiceInput
from vipcast.core.desired import Backend, BGPRoute, L2Ownership, NatRule

HOT = (Backend, NatRule, BGPRoute, L2Ownership, Assignment, ServiceInput)

SAMPLES: dict[type, tuple[Any, ...]] = {
    Backend: ("10.0.0.1", 8080, "n1", True, False),
    NatRule: ("ns/a", "192.0.2.1", 80, "TCP", (Backend("10.0.0.1", 8080),), "Local",
              ("10.0.0.0/8",)),
    BGPRoute: ("192.0.2.1/32", ("tor",), (1,), ((1, 2, 3),), 100, ("ns/a",), (7,)),
    L2Ownership: ("192.0.2.1", ("eth0",), "n1", ("n1", "n2"), ("ns/a",)),
    Assignment: ("ns/a", ("192.0.2.1",), "p", Reason.ASSIGNED, "from pool p",
                 ("192.0.2.9",), (("192.0.2.9", "gone"),)),
    ServiceInput: ("ns", "a", "LoadBalancer", "x/y", {"app": "a"}, {"team": "t"},
                   ("192.0.2.1",), None, "p", (6, 4), "PreferDualStack", "k",
                   ((80, "TCP"),), "Local", (("app", "a"),)),
}
#: fields whose default is a new empty dict (default_factory)
FACTORY = {"labels", "namespace_labels"}


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_constructor_takes_the_fields_in_order_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields, strict=True):
        if field.default_factory is not dataclasses.MISSING:
            assert field.name in FACTORY and param.default is not inspect.Parameter.empty
            continue
        want = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        assert param.default == want, field.name
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_values_behave_as_frozen_dataclasses(cls: type) -> None:
    args = SAMPLES[cls]
    names = [f.name for f in dataclasses.fields(cls)]
    value = cls(*args)
    assert tuple(getattr(value, name) for name in names) == args
    assert vars(value) == dict(zip(names, args, strict=True))  # every field set, nothing else
    by_keyword = cls(**dict(zip(names, args, strict=True)))
    assert by_keyword == value
    if cls is not ServiceInput:  # holds label dicts: never hashed
        assert hash(by_keyword) == hash(value)
    assert repr(value).startswith(f"{cls.__name__}({names[0]}=")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, names[0], args[0])
    changed = dataclasses.replace(value, **{names[0]: "other"})
    assert getattr(changed, names[0]) == "other" and changed != value
    assert pickle.loads(pickle.dumps(value)) == value
    required = [f for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    short, other = cls(*args[: len(required)]), cls(*args[: len(required)])
    for field in dataclasses.fields(cls)[len(required):]:
        if field.default_factory is dataclasses.MISSING:
            assert getattr(short, field.name) == field.default
        else:  # a new one per value, as default_factory makes it
            made = getattr(short, field.name)
            assert made == field.default_factory() and type(made) is dict
            assert made is not getattr(other, field.name)


def test_order_is_the_fields_order() -> None:
    low, high = Backend("10.0.0.1", 80), Backend("10.0.0.1", 81)
    assert sorted([high, low]) == [low, high]
    assert NatRule("a", "v", 1, "TCP", ()) < NatRule("a", "v", 1, "UDP", ())
