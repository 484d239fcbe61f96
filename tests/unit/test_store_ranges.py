"""The range lists and interval arithmetic of the compact port storage (store/ranges.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portscope.store import ranges as rg

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def test_encode_decode_round_trip() -> None:
    ports = [5, 1, 2, 3, 9, 65535, 10, 2]
    text, lo, hi, count = rg.encode(ports)
    assert (text, lo, hi, count) == ("1-3,5,9-10,65535", 1, 65535, 7)
    assert list(rg.decode(text)) == sorted(set(ports))
    assert rg.encode_spans([(9, 10), (1, 3), (2, 2), (4, 4)]) == ("1-4,9-10", 1, 10, 6)
    assert rg.covers([(1, 3), (9, 10)], 10) and not rg.covers([(1, 3), (9, 10)], 5)
    with pytest.raises(ValueError):
        rg.encode([])


def _expand(segs: list[rg.Segment]) -> dict[int, rg.Attrs]:
    return {n: s.attrs for s in segs for n in range(s.lo, s.hi + 1)}


def test_overlay_follows_the_per_port_rules() -> None:
    day = timedelta(days=1)
    segs: list[rg.Segment] = []
    segs = rg.overlay(segs, 1, 10, lambda o: rg.observe(o, "closed", "reset", T0, "a"))
    assert segs == [rg.Segment(1, 10, rg.Attrs("closed", "reset", T0, T0, T0, "a"))]
    # a newer run sees 4-6 filtered and 8-12 closed
    segs = rg.overlay(segs, 4, 6, lambda o: rg.observe(o, "filtered", "no-response",
                                                        T0 + day, "b"))
    segs = rg.overlay(segs, 8, 12, lambda o: rg.observe(o, "closed", "reset", T0 + day, "b"))
    got = _expand(segs)
    assert got[1] == rg.Attrs("closed", "reset", T0, T0, T0, "a")
    assert got[5] == rg.Attrs("filtered", "no-response", T0, T0 + day, T0 + day, "b")
    assert got[9] == rg.Attrs("closed", "reset", T0, T0, T0 + day, "b")  # state kept
    assert got[12] == rg.Attrs("closed", "reset", T0 + day, T0 + day, T0 + day, "b")
    assert [(s.lo, s.hi) for s in segs] == [(1, 3), (4, 6), (7, 7), (8, 10), (11, 12)]
    # an older import only moves first seen back; folding again changes nothing
    old = rg.overlay(segs, 1, 12, lambda o: rg.observe(o, "open", "syn-ack", T0 - day, "o"))
    assert _expand(old)[5] == got[5]._replace(first_seen=T0 - day)
    again = rg.overlay(segs, 8, 12, lambda o: rg.observe(o, "closed", "reset", T0 + day, "b"))
    assert again == segs


def test_remove_hands_back_what_the_ports_had() -> None:
    a = rg.Attrs("closed", "reset", T0, T0, T0, "a")
    segs = [rg.Segment(1, 100, a)]
    rest, taken = rg.remove(segs, [22, 80, 81, 200])
    assert [(s.lo, s.hi) for s in rest] == [(1, 21), (23, 79), (82, 100)]
    assert taken == {22: a, 80: a, 81: a}


def test_mark_and_runs_of() -> None:
    marks = bytearray(65536)
    rg.mark(marks, "1-3,7,65530-65535", 1)
    rg.mark(marks, "3-4,9", 2)  # a later set wins where they overlap
    assert rg.runs_of(marks, 1) == [(1, 2), (7, 7), (65530, 65535)]
    assert rg.runs_of(marks, 2) == [(3, 4), (9, 9)]
    assert rg.runs_of(marks, 3) == []


def test_subtract() -> None:
    assert rg.subtract([(1, 10), (20, 20), (30, 31)], [1, 5, 20, 31, 99]) == [
        (2, 4), (6, 10), (30, 30)]


def test_overlay_many_equals_one_overlay_per_span() -> None:
    """The one-pass overlay of a whole port set gives exactly what one overlay per span
    gives, over random fragmented histories (the top-ports pattern)."""
    import random

    rnd = random.Random(1234)
    for trial in range(300):
        segs: list[rg.Segment] = []
        for run in range(rnd.randint(0, 4)):
            ports = rnd.sample(range(1, 200), rnd.randint(1, 120))
            spans = [(a, b) for a, b in rg.to_ranges(ports)]
            state = rnd.choice(["closed", "filtered"])
            when = T0 + timedelta(hours=rnd.randint(-5, 5))

            def update(o: rg.Attrs | None, state: str = state, when: datetime = when,
                       run: int = run) -> rg.Attrs:
                return rg.observe(o, state, "reset", when, f"r{run}")

            one_by_one = segs
            for a, b in spans:
                one_by_one = rg.overlay(one_by_one, a, b, update)
            many = rg.overlay_many(segs, spans, update)
            assert many == one_by_one, (trial, run)
            segs = many
    # overlapping spans (never from the store) still give the sequential result
    upd = lambda o: rg.observe(o, "closed", "reset", T0, "x")  # noqa: E731
    assert rg.overlay_many([], [(1, 5), (3, 8)], upd) == rg.overlay(
        rg.overlay([], 1, 5, upd), 3, 8, upd)
