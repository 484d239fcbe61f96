"""ACK scan (``-sA``): maps firewall rules, not open ports. A RST comes back whether the
port is open or closed -> unfiltered; ICMP unreachable or silence -> filtered."""

from __future__ import annotations

from portscope.model import PortState, Reason
from portscope.packets.fast import K_TCP, Reply
from portscope.probes._icmp import tcp_icmp_verdict
from portscope.probes.base import RawProbe, ScanType, Verdict


def classify(rep: Reply, from_target: bool) -> Verdict | None:
    if rep.kind == K_TCP:
        return (PortState.UNFILTERED, Reason.RESET) if rep.flags & 0x04 else None
    return tcp_icmp_verdict(rep)


SCAN_TYPE = ScanType(
    name="ack", flag="A", protocol="tcp", needs_root=True, no_response=PortState.FILTERED,
    help="ACK scan: unfiltered (a RST came back) vs filtered; maps firewall rules",
    raw=RawProbe("tcp", classify, tcp_flags=0x10),
)
