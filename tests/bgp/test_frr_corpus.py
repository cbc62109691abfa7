"""The FRR bgpd fuzzing corpus (3,234 raw messages) against the codec and a sans-IO session.

Every file is read as a stream from a peer in Established (the corpus's own OPEN brought the
session up) and, when it starts as an OPEN, as the peer's OPEN in OpenSent. Each outcome is
compared with ``vectors/frr_corpus_outcomes.json``, where every rejected class names its RFC
rule: a change of outcome is a deliberate act (``VIPCAST_REGENERATE_CORPUS_OUTCOMES=1``
rewrites the file, and the diff shows what moved). The corpus lives outside the repository
(``frr_corpus.corpus_dir()``); when it is missing these tests fail, they do not skip.
The live TCP half is ``test_frr_corpus_live.py``.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from frr_corpus import (
    EXPECTED_FILES,
    OUTCOMES,
    PEER_OPEN_FILE,
    REGENERATE_ENV,
    RULES,
    Negotiation,
    coarse,
    codec_outcome,
    corpus,
    corpus_dir,
    drain,
    established_session,
    is_rejection,
    open_sent_outcome,
    recorded,
    session_classes,
    sha1,
)

pytestmark = pytest.mark.timeout(300)

#: generous: the codec holds one message (at most 64 KiB) and its decoded value at a time
MEMORY_BOUND = 32 * 2**20


@cache
def negotiation() -> Negotiation:
    return Negotiation.of(established_session(corpus()[PEER_OPEN_FILE]))


def compute(files: dict[str, bytes]) -> dict[str, dict[str, object]]:
    nego = negotiation()
    out: dict[str, dict[str, object]] = {}
    for name, data in files.items():
        entry: dict[str, object] = {"sha1": sha1(data), "established": codec_outcome(data, nego)}
        if data[18:19] == b"\x01":
            entry["open_sent"] = open_sent_outcome(data)
        out[name] = entry
    return out


def write_outcomes(files: dict[str, dict[str, object]]) -> None:
    counts: Counter[str] = Counter()
    for entry in files.values():
        for key in ("established", "open_sent"):
            counts.update(f"{key}: {cls}" for cls in entry.get(key, ()))  # type: ignore[attr-defined]
    used = sorted({c.split(": ", 1)[1] for c in counts})
    doc_head = {
        "what": "per-file outcome of the FRR bgpd fuzzing corpus (qlyoung/corpi, MIT) in "
        "vipcast's BGP codec; regenerate only with VIPCAST_REGENERATE_CORPUS_OUTCOMES=1",
        "peer_open": PEER_OPEN_FILE,
        "rules": {cls: RULES[cls] for cls in used},
        "class_counts": dict(sorted(counts.items())),
    }
    lines = [json.dumps(doc_head, indent=1, ensure_ascii=False)[:-2] + ',\n "files": {']
    items = sorted(files.items())
    for i, (name, entry) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        lines.append(f"  {json.dumps(name)}: {json.dumps(entry, ensure_ascii=False)}{sep}")
    lines.append(" }\n}\n")
    OUTCOMES.write_text("\n".join(lines))


def test_the_whole_corpus_is_there() -> None:
    files = corpus()
    assert len(files) == EXPECTED_FILES, f"{len(files)} files in {corpus_dir()}"
    want = recorded()
    assert sorted(files) == sorted(want)
    changed = [name for name, data in files.items() if sha1(data) != want[name]["sha1"]]
    assert not changed, f"corpus files differ from the recorded ones: {changed[:5]}"


def test_every_file_gets_its_recorded_rfc_outcome_from_the_codec() -> None:
    files = corpus()
    tracemalloc.start()
    try:
        got = compute(files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if os.environ.get(REGENERATE_ENV) == "1":
        write_outcomes(got)
    assert peak < MEMORY_BOUND, f"peak {peak} bytes while decoding the corpus"
    for entry in got.values():
        for key in ("established", "open_sent"):
            for cls in entry.get(key, ()):  # type: ignore[attr-defined]
                assert cls in RULES, f"class {cls!r} has no rule"
    want = recorded()
    moved = {name: (want[name], entry) for name, entry in got.items() if want.get(name) != entry}
    assert not moved, f"{len(moved)} outcomes moved, e.g. {list(moved.items())[:3]}"


def test_the_recorded_rules_are_the_rules_in_force() -> None:
    doc = json.loads(OUTCOMES.read_text())
    for cls, rule in doc["rules"].items():
        assert RULES[cls] == rule, cls
        if is_rejection(cls):
            assert "RFC" in rule and (cls.startswith("treat-as-withdraw") or "NOTIFICATION" in rule)


def test_a_live_sans_io_session_does_what_the_codec_says() -> None:
    """The session in Established answers each file as the codec classified it (coarser:
    a session does not say which attribute it discarded), and stays Established unless the
    last class ended it."""
    files, want = corpus(), recorded()
    peer_open = files[PEER_OPEN_FILE]
    for name, data in files.items():
        session = established_session(peer_open)
        session.receive_data(data, 1.0)
        classes: list[str] = want[name]["established"]  # type: ignore[assignment]
        assert session_classes(session, drain(session)) == coarse(classes), name
        ended = bool(classes) and (
            classes[-1].startswith("N") or classes[-1] == "notification-received"
        )
        assert (session.state.value == "Established") != ended, (name, session.state)


def test_open_sent_outcomes_are_recorded_for_every_open() -> None:
    want = recorded()
    opens = [name for name, data in corpus().items() if data[18:19] == b"\x01"]
    assert opens and all("open_sent" in want[name] for name in opens)
    accepted = [n for n in opens if want[n]["open_sent"] == ["open-accepted"]]
    assert f"seed/{Path(PEER_OPEN_FILE).name}" in accepted
