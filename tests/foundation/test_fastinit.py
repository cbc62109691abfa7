"""``vipcast.fastinit.fast_init`` on small dataclasses: the ``__init__`` it generates takes
and does what the dataclass's own does (order and kinds of the parameters, defaults, a fresh
``default_factory`` object per call, ``__post_init__``, the ``TypeError`` of a wrong call),
fills the instance dict directly, and classes it cannot serve are refused when decorated."""

from __future__ import annotations

import dataclasses
import dis
import inspect
import itertools
import pickle
from dataclasses import KW_ONLY, InitVar, dataclass, field
from typing import Any

import pytest

from vipcast.fastinit import fast_init


@dataclass(frozen=True, order=True)
class Plain:
    """A dataclass with its own ``__init__`` (:class:`Fast`'s fields are these)."""

    name: str
    port: int = 80
    tags: list[str] = field(default_factory=list)
    _: KW_ONLY
    weight: int = 1
    zone: str = "a"


@fast_init
@dataclass(frozen=True, order=True)
class Fast(Plain):
    """:class:`Plain`'s fields, in its order, with the generated ``__init__``."""


@fast_init
@dataclass(frozen=True)
class KeywordOnly:
    address: str
    mask: int = field(default=32, kw_only=True)
    labels: dict[str, str] = field(default_factory=dict, kw_only=True)
    required: str = field(kw_only=True)  # a keyword-only field without default


@fast_init
@dataclass(frozen=True)
class Checked:
    low: int
    high: int
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        self.seen.append("post_init")


def test_signature_is_the_dataclass_signature() -> None:
    theirs = inspect.signature(Plain.__init__).parameters.values()
    ours = inspect.signature(Fast.__init__).parameters.values()
    assert [(p.name, p.kind) for p in ours] == [(p.name, p.kind) for p in theirs]
    assert [p.name for p in ours] == ["self", "name", "port", "tags", "weight", "zone"]
    kinds = {p.name: p.kind for p in ours}
    assert kinds["port"] is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert kinds["weight"] is kinds["zone"] is inspect.Parameter.KEYWORD_ONLY
    defaults = {p.name: p.default for p in ours}
    assert defaults["port"] == 80 and defaults["weight"] == 1 and defaults["zone"] == "a"
    assert defaults["name"] is inspect.Parameter.empty
    assert Fast.__init__.__qualname__ == "Fast.__init__"


def test_values_equal_those_of_the_dataclass_init() -> None:
    calls = [(("x",), {}), (("x", 81, ["t"]), {"weight": 3}), (("x",), {"zone": "b"}),
             ((), {"name": "y", "port": 1, "tags": [], "weight": 2, "zone": "c"})]
    for args, kwargs in calls:
        fast, plain = Fast(*args, **kwargs), Plain(*args, **kwargs)  # type: ignore[arg-type]
        assert vars(fast) == vars(plain)  # every field set, nothing else
        assert list(vars(fast)) == [f.name for f in dataclasses.fields(Fast)]
        assert repr(fast) == repr(plain).replace("Plain(", "Fast(")
    assert Fast("a") == Fast("a") and hash(Fast("a", tags=())) == hash(Fast("a", tags=()))  # type: ignore[arg-type]
    assert sorted([Fast("b"), Fast("a", 90), Fast("a", 80)]) == [
        Fast("a", 80), Fast("a", 90), Fast("b")]


def test_default_factory_gives_a_new_object_each_time() -> None:
    one, two = Fast("a"), Fast("a")
    assert one.tags == [] and one.tags is not two.tags
    given = ["mine"]
    assert Fast("a", tags=given).tags is given  # an argument is stored as passed
    k1, k2 = KeywordOnly("192.0.2.1", required="r"), KeywordOnly("192.0.2.1", required="r")
    assert k1.labels == {} and k1.labels is not k2.labels and k1.mask == 32


def test_any_default_factory_is_called_per_value() -> None:
    made = itertools.count()

    @fast_init
    @dataclass(frozen=True)
    class Numbered:
        serial: int = field(default_factory=lambda: next(made))
        members: frozenset[str] = field(default_factory=frozenset)

    assert [Numbered().serial for _ in range(3)] == [0, 1, 2]
    assert Numbered(serial=7).serial == 7 and next(made) == 3  # not called when given
    assert Numbered().members == frozenset()


def test_keyword_only_fields_are_keyword_only() -> None:
    value = KeywordOnly("192.0.2.1", mask=24, required="r")
    assert (value.address, value.mask, value.required) == ("192.0.2.1", 24, "r")
    with pytest.raises(TypeError, match="positional argument"):
        KeywordOnly("192.0.2.1", 24)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="required"):
        KeywordOnly("192.0.2.1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional argument"):
        Fast("a", 80, [], 2)  # type: ignore[call-arg]


def test_wrong_calls_raise_type_error_as_the_dataclass() -> None:
    classes: tuple[Any, ...] = (Fast, Plain)  # called wrongly on purpose
    for cls in classes:
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            cls("a", colour="red")
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'name'"):
            cls()
        with pytest.raises(TypeError, match="multiple values for argument 'name'"):
            cls("a", name="b")


def test_frozen_replace_and_pickle_are_the_dataclass_own() -> None:
    value = Fast("a", 81, ["t"], weight=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.port = 82  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del value.port
    changed = dataclasses.replace(value, port=90, zone="z")
    assert changed == Fast("a", 90, ["t"], weight=2, zone="z") and value.port == 81
    assert changed.tags is value.tags  # replace passes every field on, as the dataclass does
    copy = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == value and type(copy) is Fast


def test_post_init_runs_last_with_every_field_set() -> None:
    value = Checked(1, 2)
    assert value.seen == ["post_init"]
    with pytest.raises(ValueError, match="low 3 > high 2"):
        Checked(3, 2)
    assert dataclasses.replace(value, high=5).seen == ["post_init", "post_init"]


def test_classes_it_cannot_serve_are_refused_when_decorated() -> None:
    class NotDataclass:
        x: int = 0

    with pytest.raises(TypeError, match="not a dataclass"):
        fast_init(NotDataclass)

    @dataclass(frozen=True, init=False)
    class NoInit:
        x: int

    with pytest.raises(TypeError, match="NoInit is a dataclass with init=False"):
        fast_init(NoInit)

    @dataclass(frozen=True)
    class Derived:
        x: int
        y: int = field(init=False, default=0)

    with pytest.raises(TypeError, match=r"Derived\.y is an init=False field"):
        fast_init(Derived)

    @dataclass(frozen=True)
    class WithInitVar:
        x: int
        seed: InitVar[int] = 0

        def __post_init__(self, seed: int) -> None:
            pass

    with pytest.raises(TypeError, match="InitVar fields are not supported"):
        fast_init(WithInitVar)

    @dataclass(frozen=True)
    class OwnName:
        _fi_d: int

    with pytest.raises(TypeError, match="the generated code's own"):
        fast_init(OwnName)


def test_a_field_named_self_is_a_parameter_like_any_other() -> None:
    @fast_init
    @dataclass(frozen=True)
    class Odd:
        self: str
        type: str = "LoadBalancer"

    assert vars(Odd("me")) == {"self": "me", "type": "LoadBalancer"}
    assert next(iter(inspect.signature(Odd.__init__).parameters)) == "_fi_self"
    assert Odd(self="me", type="x").type == "x"


#: the hand-written ``__init__``'s marker for "a new dict" (a global, as the generated one's)
_NEW = object()


@dataclass(frozen=True)
class Written:
    """What :func:`fast_init` generates, written by hand (as the six planner values were)."""

    ip: str
    port: int = 80
    labels: dict[str, str] = field(default_factory=dict)

    def __init__(self, ip: str, port: int = 80, labels: dict[str, str] = _NEW) -> None:  # type: ignore[assignment]
        d = self.__dict__
        d["ip"] = ip
        d["port"] = port
        d["labels"] = {} if labels is _NEW else labels


def test_generated_init_is_the_hand_written_dict_filling_one() -> None:
    """The speed it is for, checked without a clock: the generated ``__init__`` runs the
    instructions of the hand-written one that stores into ``self.__dict__`` (no call per
    field; a ``dict`` factory is the literal ``{}``); only local and global names differ."""

    @fast_init
    @dataclass(frozen=True)
    class Generated:
        ip: str
        port: int = 80
        labels: dict[str, str] = field(default_factory=dict)

    def shape(function: Any) -> list[tuple[str, object]]:
        named = {"LOAD_FAST", "STORE_FAST", "LOAD_GLOBAL"}
        return [(i.opname, None if i.opname in named else i.argval)
                for i in dis.get_instructions(function)]

    assert shape(Generated.__init__) == shape(Written.__init__)
    assert vars(Generated("a")) == vars(Written("a")) == {"ip": "a", "port": 80, "labels": {}}
