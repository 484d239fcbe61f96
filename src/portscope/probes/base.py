"""The scan-type descriptor every probe module declares, and the raw-probe contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portscope.model import PortState
from portscope.packets.fast import Reply

Verdict = tuple[PortState, str]
"""A decided port: state and the reason that decided it."""

Classifier = Callable[[Reply, bool], "Verdict | None"]
"""``classify(reply, from_target)``: the verdict a validated reply gives, or None when it
says nothing about the port. *from_target* is False for ICMP errors sent by another host
(a router or firewall on the way)."""


@dataclass(frozen=True, slots=True)
class RawProbe:
    """How a raw scan type builds its probe and reads the replies (pure)."""

    kind: str  # "tcp" | "udp"
    classify: Classifier
    tcp_flags: int = 0  # TCP probes: the flags sent
    window: int = 1024
    mss: int | None = None  # TCP probes: an MSS option (SYN probes carry one, like nmap's)
    # an answer from the target itself that proves the probe arrived: only these count as
    # loss evidence when a retransmission gets one (ICMP errors are rate-limited)
    evidence: Callable[[Reply], bool] = lambda r: r.kind in (1, 2)


@dataclass(frozen=True, slots=True)
class ScanType:
    name: str  # "connect", "syn", ...
    flag: str  # the letter after -s: "T" for -sT
    protocol: str  # "tcp" | "udp"
    needs_root: bool
    no_response: PortState  # the state when nothing answers
    help: str
    raw: RawProbe | None = None  # raw-packet scans: how to build and classify
    fallback: str | None = None  # the flag used instead without raw-socket privileges
