"""SYN scan (``-sS``): half-open; SYN/ACK -> open, RST -> closed, ICMP unreachable ->
filtered, silence -> filtered. Needs raw sockets; falls back to ``-sT`` without them."""

from __future__ import annotations

from portscope.model import PortState, Reason
from portscope.packets.fast import K_TCP, Reply
from portscope.probes._icmp import tcp_icmp_verdict
from portscope.probes.base import RawProbe, ScanType, Verdict

SYN, RST, ACK = 0x02, 0x04, 0x10


def classify(rep: Reply, from_target: bool) -> Verdict | None:
    if rep.kind == K_TCP:
        if rep.flags & RST:
            return (PortState.CLOSED, Reason.RESET)
        if rep.flags & SYN:
            # SYN/ACK; a bare SYN is the split handshake, also a listening port
            return (PortState.OPEN, Reason.SYN_ACK if rep.flags & ACK else "split-handshake-syn")
        return None
    return tcp_icmp_verdict(rep)


SCAN_TYPE = ScanType(
    name="syn", flag="S", protocol="tcp", needs_root=True, no_response=PortState.FILTERED,
    help="SYN scan: half-open raw probes, fast and quiet; needs root or CAP_NET_RAW",
    raw=RawProbe("tcp", classify, tcp_flags=SYN, mss=1460), fallback="T",
)
