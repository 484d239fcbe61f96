"""The scan-type descriptor every probe module declares."""

from __future__ import annotations

from dataclasses import dataclass

from portscope.model import PortState


@dataclass(frozen=True, slots=True)
class ScanType:
    name: str  # "connect", "syn", ...
    flag: str  # the letter after -s: "T" for -sT
    protocol: str  # "tcp" | "udp"
    needs_root: bool
    no_response: PortState  # the state when nothing answers
    help: str
