"""nmap's meaning of ICMP and ICMPv6 errors for port scans (``scan_engine_raw.cc``).

TCP scans: destination unreachable with codes net, host, protocol, port, net-prohibited,
host-prohibited, admin-prohibited, and time exceeded -> filtered. UDP scans: port
unreachable *from the target itself* -> closed; the others -> filtered. ICMPv6 maps the
same way (no-route, admin-prohibited, beyond-scope, address-unreachable, port-unreachable,
failed-policy, reject-route).
"""

from __future__ import annotations

from portscope.model import PortState, Reason
from portscope.packets.fast import K_ICMP_ERROR, Reply

_V4_UNREACH: dict[int, str] = {
    0: Reason.NET_UNREACH,
    1: Reason.HOST_UNREACH,
    2: Reason.PROTO_UNREACH,
    3: Reason.PORT_UNREACH,
    9: Reason.NET_PROHIBITED,
    10: Reason.HOST_PROHIBITED,
    13: Reason.ADMIN_PROHIBITED,
}
_V6_UNREACH: dict[int, str] = {
    0: "no-route",
    1: Reason.ADMIN_PROHIBITED,
    2: "beyond-scope",
    3: "addr-unreach",
    4: Reason.PORT_UNREACH,
    5: "failed-policy",
    6: "reject-route",
}


def icmp_reason(rep: Reply) -> str | None:
    """The reason string of an ICMP error reply, or None if nmap ignores that message."""
    if rep.kind != K_ICMP_ERROR:
        return None
    if len(rep.target) == 4:
        if rep.icmp_type == 3:
            return _V4_UNREACH.get(rep.icmp_code)
        if rep.icmp_type == 11:
            return Reason.TIME_EXCEEDED
        return None
    if rep.icmp_type == 1:
        return _V6_UNREACH.get(rep.icmp_code)
    if rep.icmp_type == 3:
        return Reason.TIME_EXCEEDED
    return None


def tcp_icmp_verdict(rep: Reply) -> tuple[PortState, str] | None:
    reason = icmp_reason(rep)
    return (PortState.FILTERED, reason) if reason is not None else None


def udp_icmp_verdict(rep: Reply, from_target: bool) -> tuple[PortState, str] | None:
    reason = icmp_reason(rep)
    if reason is None:
        return None
    if reason == Reason.PORT_UNREACH and from_target:
        return (PortState.CLOSED, reason)
    return (PortState.FILTERED, reason)
