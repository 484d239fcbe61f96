"""The OS knowledge base and the scoring of signatures against it (pure).

The base is portscope's own (``portscope/data/os-signatures.toml``), written from what
the TCP/IP stacks of Linux, Windows, the BSDs, macOS, network devices and embedded
stacks are documented and observed to do (initial TTL, SYN/ACK option layout, window,
timestamp clock, IP-ID policy, ECN, RST and ICMP behaviour). Each entry lists the
feature values it expects: a value, a list of acceptable values, or ``{min, max}``.

A match is weighted: every feature that both the signature and the entry have counts its
weight; the score is the weight that agrees over the weight compared. Accuracy (percent)
is that score, lowered when only a small part of the entry could be compared, so a guess
from a single reply never looks certain.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from portscope.errors import DataError

WEIGHTS: dict[str, int] = {
    "ttl": 20, "syn_order": 20, "syn_window": 10, "syn_wscale": 6, "syn_df": 5,
    "syn_ts": 5, "syn_sack": 3, "ts_hz": 10, "ts_offset": 6, "ipid_tcp": 8, "ecn": 5,
    "rst_open_window": 3, "rst_open_df": 2, "rst_open_seq": 2,
    "closed_window": 3, "closed_df": 2, "closed_ack": 3, "closed_ack_rst_seq": 2,
    "closed_ttl": 8, "fpu_closed": 3,
    "echo": 2, "echo_df": 3, "echo_ttl": 10, "echo_code": 5, "echo_ipid_zero": 2,
    "unreach": 2, "unreach_df": 3, "unreach_ttl": 8, "unreach_quote": 5,
}
"""Default weight of each feature (an entry may override with ``weights``)."""


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    vendor: str
    cpe: tuple[str, ...]
    expect: Mapping[str, Any]
    weights: Mapping[str, int] = field(default_factory=dict)
    notes: str = ""


@dataclass(frozen=True)
class Match:
    entry: Entry
    accuracy: int  # percent
    score: float  # agreeing weight / compared weight
    coverage: float  # compared weight / the entry's total weight
    agree: tuple[str, ...]
    disagree: tuple[str, ...]


def value_matches(expected: Any, got: Any) -> bool:
    if isinstance(expected, list):
        return any(value_matches(e, got) for e in expected)
    if isinstance(expected, dict):
        if not isinstance(got, int | float) or isinstance(got, bool):
            return False
        lo, hi = expected.get("min"), expected.get("max")
        return (lo is None or got >= lo) and (hi is None or got <= hi)
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    return bool(expected == got)


def score(signature: Mapping[str, Any], entry: Entry) -> Match:
    compared = agreed = total = 0.0
    agree: list[str] = []
    disagree: list[str] = []
    for feature, expected in entry.expect.items():
        w = entry.weights.get(feature, WEIGHTS.get(feature, 1))
        total += w
        if feature not in signature:
            continue
        compared += w
        if value_matches(expected, signature[feature]):
            agreed += w
            agree.append(feature)
        else:
            disagree.append(feature)
    s = agreed / compared if compared else 0.0
    coverage = compared / total if total else 0.0
    factor = 1.0 if coverage >= 0.6 else 0.5 + coverage / 1.2
    return Match(entry, round(100 * s * min(1.0, factor)), s, coverage, tuple(agree),
                 tuple(disagree))


def rank(signature: Mapping[str, Any], entries: Sequence[Entry]) -> list[Match]:
    """Every entry scored, best first (ties: the more specific, then by name)."""
    matches = [score(signature, e) for e in entries]
    matches.sort(key=lambda m: (-m.accuracy, -m.coverage, m.entry.name))
    return matches


def parse(text: str, where: str = "os-signatures") -> list[Entry]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{where}: {exc}") from None
    out: list[Entry] = []
    for i, raw in enumerate(doc.get("os", [])):
        if not isinstance(raw, dict) or "name" not in raw or "expect" not in raw:
            raise DataError(f"{where}: entry {i + 1} needs name and expect")
        unknown = set(raw["expect"]) - set(WEIGHTS)
        if unknown:
            raise DataError(f"{where}: {raw['name']}: unknown features {sorted(unknown)}")
        out.append(Entry(name=str(raw["name"]), family=str(raw.get("family", "")),
                         vendor=str(raw.get("vendor", "")),
                         cpe=tuple(str(c) for c in raw.get("cpe", [])),
                         expect=dict(raw["expect"]),
                         weights={str(k): int(v) for k, v in raw.get("weights", {}).items()},
                         notes=str(raw.get("notes", ""))))
    return out


_CACHE: list[Entry] | None = None


def load() -> list[Entry]:
    """The built-in knowledge base (parsed once)."""
    global _CACHE
    if _CACHE is None:
        text = resources.files("portscope.data").joinpath("os-signatures.toml").read_text(
            "utf-8")
        _CACHE = parse(text, "portscope/data/os-signatures.toml")
    return _CACHE
