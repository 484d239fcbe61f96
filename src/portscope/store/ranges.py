"""Port sets as range lists, and the interval arithmetic of the compact current view
(pure; the store's I/O is in :mod:`portscope.store.api`).

A port set is written ``"1-21,23-79,81"`` (ascending, disjoint, not adjacent). The
current view of ports known only from port sets is a list of :data:`Segment` s per
(address, protocol): disjoint runs of ports that share their current state, reason,
first seen, state since, last seen and run.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import NamedTuple


def to_ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged (lo, hi) runs of *ports* (duplicates allowed)."""
    out: list[tuple[int, int]] = []
    lo = hi = -2
    for n in sorted(set(ports)):
        if n == hi + 1:
            hi = n
            continue
        if hi >= 0:
            out.append((lo, hi))
        lo = hi = n
    if hi >= 0:
        out.append((lo, hi))
    return out


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged union of (lo, hi) spans (overlapping or adjacent ones join)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def mark(marks: bytearray, text: str, value: int) -> None:
    """Set ``marks[port] = value`` for every port of the range list *text*."""
    for part in text.split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        if b:
            lo, hi = int(a), int(b)
            marks[lo:hi + 1] = bytes((value,)) * (hi - lo + 1)
        else:
            marks[int(a)] = value


def runs_of(marks: bytes | bytearray, value: int) -> list[tuple[int, int]]:
    """The (lo, hi) runs of ports whose mark is *value* (1..255)."""
    pattern = re.compile(re.escape(bytes((value,))) + b"+")
    return [(m.start(), m.end() - 1) for m in pattern.finditer(marks)]


def covers(spans: list[tuple[int, int]], port: int) -> bool:
    """Whether sorted, disjoint *spans* hold *port*."""
    i = bisect.bisect_right(spans, (port, 1 << 30)) - 1
    return i >= 0 and spans[i][0] <= port <= spans[i][1]


def subtract(spans: list[tuple[int, int]], ports: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, disjoint *spans* without *ports*."""
    out = list(spans)
    for n in sorted(set(ports)):
        i = bisect.bisect_right(out, (n, 1 << 30)) - 1
        if i < 0 or not out[i][0] <= n <= out[i][1]:
            continue
        lo, hi = out[i]
        out[i:i + 1] = [x for x in ((lo, n - 1), (n + 1, hi)) if x[0] <= x[1]]
    return out


def encode_spans(spans: Iterable[tuple[int, int]]) -> tuple[str, int, int, int]:
    """:func:`encode` of the union of (lo, hi) spans."""
    rngs = merge_spans(spans)
    if not rngs:
        raise ValueError("empty port set")
    text = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in rngs)
    return text, rngs[0][0], rngs[-1][1], sum(b - a + 1 for a, b in rngs)


def encode(ports: Iterable[int]) -> tuple[str, int, int, int]:
    """(range list text, lowest port, highest port, count) of a non-empty set of ports."""
    rngs = to_ranges(ports)
    if not rngs:
        raise ValueError("empty port set")
    text = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in rngs)
    return text, rngs[0][0], rngs[-1][1], sum(b - a + 1 for a, b in rngs)


def decode_ranges(text: str) -> Iterator[tuple[int, int]]:
    for part in text.split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        lo = int(a)
        yield lo, int(b) if b else lo


def decode(text: str) -> Iterator[int]:
    for lo, hi in decode_ranges(text):
        yield from range(lo, hi + 1)


class Attrs(NamedTuple):
    """What the current view knows of a run of ports."""

    state: str
    reason: str
    first_seen: datetime
    state_since: datetime
    last_seen: datetime
    run_id: str


class Segment(NamedTuple):
    lo: int
    hi: int
    attrs: Attrs


def observe(old: Attrs | None, state: str, reason: str, seen: datetime, run_id: str
            ) -> Attrs:
    """The current view after one more observation (the same rules as the per-port fold:
    the latest observation wins, an older one only moves first seen back)."""
    if old is None:
        return Attrs(state, reason, seen, seen, seen, run_id)
    first = min(old.first_seen, seen)
    if old.last_seen <= seen:
        since = seen if old.state != state else old.state_since
        return Attrs(state, reason, first, since, seen, run_id)
    return old._replace(first_seen=first)


def overlay(segments: list[Segment], lo: int, hi: int,
            update: Callable[[Attrs | None], Attrs]) -> list[Segment]:
    """*segments* (sorted, disjoint) with ports lo..hi replaced by ``update(old)`` (old is
    None where no segment covered them); adjacent equal segments are merged."""
    return overlay_many(segments, [(lo, hi)], update)


def overlay_many(segments: list[Segment], spans: Iterable[tuple[int, int]],
                 update: Callable[[Attrs | None], Attrs]) -> list[Segment]:
    """:func:`overlay` of every span of *spans* (sorted and disjoint, as a stored port set
    decodes) in one pass: linear, where one :func:`overlay` per span is quadratic in the
    number of fragments (the top 1,000 ports are ~600 separate runs)."""
    todo = sorted(spans)
    if any(a[1] >= b[0] for a, b in itertools.pairwise(todo)):
        for lo, hi in todo:  # overlapping spans: one at a time (never from the store)
            segments = overlay(segments, lo, hi, update)
        return segments
    segs = list(segments)
    out: list[Segment] = []
    i = 0
    for lo, hi in todo:
        while i < len(segs) and segs[i].hi < lo:
            out.append(segs[i])
            i += 1
        pos = lo  # next port of lo..hi not handled yet
        while i < len(segs) and segs[i].lo <= hi:
            seg = segs[i]
            if seg.lo < pos:
                out.append(Segment(seg.lo, pos - 1, seg.attrs))
            start = max(seg.lo, pos)
            if pos < start:
                out.append(Segment(pos, start - 1, update(None)))
            end = min(seg.hi, hi)
            out.append(Segment(start, end, update(seg.attrs)))
            pos = end + 1
            if seg.hi > hi:
                segs[i] = Segment(hi + 1, seg.hi, seg.attrs)  # the rest meets later spans
                break
            i += 1
        if pos <= hi:
            out.append(Segment(pos, hi, update(None)))
    out.extend(segs[i:])
    return coalesce(out)


def coalesce(segments: Iterable[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in sorted(segments):
        if out and out[-1].hi + 1 == seg.lo and out[-1].attrs == seg.attrs:
            out[-1] = Segment(out[-1].lo, seg.hi, seg.attrs)
        else:
            out.append(seg)
    return out


def remove(segments: list[Segment], ports: Iterable[int]) -> tuple[list[Segment],
                                                                  dict[int, Attrs]]:
    """*segments* without *ports*, and the attributes the removed ports had."""
    taken: dict[int, Attrs] = {}
    out = list(segments)
    for a, b in to_ranges(ports):
        kept: list[Segment] = []
        for seg in out:
            if seg.hi < a or seg.lo > b:
                kept.append(seg)
                continue
            for n in range(max(seg.lo, a), min(seg.hi, b) + 1):
                taken[n] = seg.attrs
            if seg.lo < a:
                kept.append(Segment(seg.lo, a - 1, seg.attrs))
            if seg.hi > b:
                kept.append(Segment(b + 1, seg.hi, seg.attrs))
        out = kept
    return sorted(out), taken
