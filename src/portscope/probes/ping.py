"""Host discovery probes (nmap's default when privileged: ``-PE -PS443 -PA80 -PP``):
ICMP echo, TCP SYN to 443, TCP ACK to 80, ICMP timestamp (IPv4 only; IPv6 has none).
Pure: which reply means "up" and with which reason.

On a directly connected Ethernet link nmap asks ARP (IPv4) or Neighbor Discovery (IPv6)
instead (``-PR``, on by default when privileged): :func:`neighbor_path` decides from the
kernel's route and the interface whether a target is on-link."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from portscope.model import Reason
from portscope.packets.fast import (
    K_ECHO_REPLY,
    K_ICMP_ERROR,
    K_TCP,
    K_TIMESTAMP_REPLY,
    Reply,
)
from portscope.packets.netlink import RTN_UNICAST, Route, RouteError
from portscope.probes._icmp import icmp_reason

ECHO = "echo"
SYN_443 = "syn443"
ACK_80 = "ack80"
TIMESTAMP = "timestamp"
DEFAULT_PROBES = (ECHO, SYN_443, ACK_80, TIMESTAMP)
TCP_PORTS = {SYN_443: (443, 0x02), ACK_80: (80, 0x10)}


def probes_for(address: str) -> tuple[str, ...]:
    """The probes sent to *address* (no ICMP timestamp over IPv6)."""
    if ":" in address:
        return (ECHO, SYN_443, ACK_80)
    return DEFAULT_PROBES


def up_reason(rep: Reply) -> str | None:
    """Why *rep* (already validated as an answer to one of our probes) shows the host up;
    None when it does not (an ICMP error from a router on the way)."""
    if rep.kind == K_TCP:
        if rep.flags & 0x04:
            return Reason.RESET
        if rep.flags & 0x12 == 0x12:
            return Reason.SYN_ACK
        return None
    if rep.kind == K_ECHO_REPLY:
        return Reason.ECHO_REPLY
    if rep.kind == K_TIMESTAMP_REPLY:
        return Reason.TIMESTAMP_REPLY
    if rep.kind == K_ICMP_ERROR and rep.responder == rep.target:
        # the target itself answered (e.g. protocol or port unreachable): it is up
        return icmp_reason(rep)
    return None


# -- on-link discovery (nmap's -PR: ARP, and ND for IPv6) ---------------------------------

ARPHRD_ETHER = 1
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80


@dataclass(frozen=True, slots=True)
class Link:
    """A network interface as the on-link decision needs it (read from sysfs)."""

    index: int
    name: str
    mac: str
    arphrd: int  # ARPHRD_* link type (1 = Ethernet)
    flags: int  # IFF_* flags


@dataclass(frozen=True, slots=True)
class NeighborPath:
    """How to ask an on-link target who it is: ARP (IPv4) or ND (IPv6) on *ifname*, from
    *src_ip* / *src_mac*."""

    kind: str  # "arp" or "nd"
    ifindex: int
    ifname: str
    src_mac: str
    src_ip: str


def neighbor_path(address: str, route: Route | RouteError | None,
                  link: Link | None) -> NeighborPath | None:
    """The ARP/ND path to *address* when it is on a directly connected Ethernet link, else
    None (off-link: behind a gateway, one of our own addresses, no route, or a link that
    has no neighbour resolution such as loopback, tun or NOARP interfaces); off-link
    targets get the IP probes instead."""
    if not isinstance(route, Route) or link is None:
        return None
    if route.type != RTN_UNICAST or route.gateway is not None or route.oif != link.index:
        return None
    if route.prefsrc is None or (":" in route.prefsrc) != (":" in address):
        return None
    if link.arphrd != ARPHRD_ETHER or link.flags & (IFF_LOOPBACK | IFF_NOARP):
        return None
    if not link.flags & IFF_UP or link.mac in ("", "00:00:00:00:00:00"):
        return None
    if ":" in address and ipaddress.IPv6Address(address).is_multicast:
        return None
    if ":" not in address:
        a4 = ipaddress.IPv4Address(address)
        if a4.is_multicast or a4 == ipaddress.IPv4Address("255.255.255.255"):
            return None
    return NeighborPath("nd" if ":" in address else "arp", link.index, link.name, link.mac,
                        route.prefsrc)


def neighbor_reason(kind: str) -> str:
    """nmap's reason for a host found up by ARP or ND."""
    return Reason.ARP_RESPONSE if kind == "arp" else Reason.ND_RESPONSE
