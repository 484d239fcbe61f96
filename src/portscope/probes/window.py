"""Window scan (``-sW``): an ACK scan that reads the RST's window: some stacks answer with
a non-zero window on open ports. RST win>0 -> open, RST win=0 -> closed. Most current
systems (Linux included) always send window 0, so every port reads closed there."""

from __future__ import annotations

from portscope.model import PortState, Reason
from portscope.packets.fast import K_TCP, Reply
from portscope.probes._icmp import tcp_icmp_verdict
from portscope.probes.base import RawProbe, ScanType, Verdict


def classify(rep: Reply, from_target: bool) -> Verdict | None:
    if rep.kind == K_TCP:
        if not rep.flags & 0x04:
            return None
        return (PortState.OPEN if rep.window else PortState.CLOSED, Reason.RESET)
    return tcp_icmp_verdict(rep)


SCAN_TYPE = ScanType(
    name="window", flag="W", protocol="tcp", needs_root=True, no_response=PortState.FILTERED,
    help="Window scan: like -sA, but a RST with a non-zero window means open",
    raw=RawProbe("tcp", classify, tcp_flags=0x10),
)
