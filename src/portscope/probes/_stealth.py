"""FIN, NULL and Xmas scans share RFC 793's rule: a closed port answers a segment without
SYN, RST or ACK with a RST; an open port stays silent. So RST -> closed, ICMP
unreachable -> filtered, silence -> open|filtered."""

from __future__ import annotations

from portscope.model import PortState, Reason
from portscope.packets.fast import K_TCP, Reply
from portscope.probes._icmp import tcp_icmp_verdict
from portscope.probes.base import RawProbe, ScanType, Verdict


def classify(rep: Reply, from_target: bool) -> Verdict | None:
    if rep.kind == K_TCP:
        return (PortState.CLOSED, Reason.RESET) if rep.flags & 0x04 else None
    return tcp_icmp_verdict(rep)


def stealth_scan(name: str, flag: str, tcp_flags: int, what: str) -> ScanType:
    return ScanType(
        name=name, flag=flag, protocol="tcp", needs_root=True,
        no_response=PortState.OPEN_FILTERED,
        help=f"{what} scan: RST means closed, silence open|filtered (RFC 793 hosts); "
             "needs root or CAP_NET_RAW",
        raw=RawProbe("tcp", classify, tcp_flags=tcp_flags),
    )
