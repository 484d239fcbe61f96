"""UDP scan (``-sU``): a protocol payload per well-known port (``udp_payloads``) so that
services answer. Any UDP reply -> open; ICMP port unreachable from the target -> closed;
other ICMP unreachables (or port unreachable from another host) -> filtered; silence ->
open|filtered. Targets rate-limit ICMP (Linux: about one error per second per source),
so the engine reports ports it could not resolve in time with the reason
``icmp-ratelimit`` instead of guessing."""

from __future__ import annotations

from portscope.model import PortState, Reason
from portscope.packets.fast import K_UDP, Reply
from portscope.probes._icmp import udp_icmp_verdict
from portscope.probes.base import RawProbe, ScanType, Verdict


def classify(rep: Reply, from_target: bool) -> Verdict | None:
    if rep.kind == K_UDP:
        return (PortState.OPEN, Reason.UDP_RESPONSE)
    return udp_icmp_verdict(rep, from_target)


SCAN_TYPE = ScanType(
    name="udp", flag="U", protocol="udp", needs_root=True, no_response=PortState.OPEN_FILTERED,
    help="UDP scan with protocol payloads (DNS, NTP, SNMP, NetBIOS, SSDP, mDNS, IKE ...); "
         "needs root or CAP_NET_RAW",
    raw=RawProbe("udp", classify, evidence=lambda r: r.kind == K_UDP),
)
