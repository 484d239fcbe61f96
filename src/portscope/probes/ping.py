"""Host discovery probes (nmap's default when privileged: ``-PE -PS443 -PA80 -PP``):
ICMP echo, TCP SYN to 443, TCP ACK to 80, ICMP timestamp (IPv4 only; IPv6 has none).
Pure: which reply means "up" and with which reason.

On a directly connected Ethernet link nmap asks ARP (IPv4) or Neighbor Discovery (IPv6)
instead (``-PR``, on by default when privileged): :func:`neighbor_path` decides from the
kernel's route and the interface whether a target is on-link."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
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

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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


def connected_networks(routes: Iterable[Route]) -> list[IPNetwork]:
    """The prefixes of the directly connected unicast routes in a route dump (no gateway;
    a device-only default route is ``0.0.0.0/0`` or ``::/0``). Only addresses inside one of them
    can be on-link, so only those need an exact route lookup."""
    nets: list[IPNetwork] = []
    for r in routes:
        if r.type != RTN_UNICAST or r.gateway is not None or r.oif is None:
            continue
        if r.dst is None:
            continue
        try:
            nets.append(ipaddress.ip_network(f"{r.dst}/{r.dst_len}", strict=False))
        except ValueError:
            continue
    return nets


def maybe_onlink(address: str, networks: Sequence[IPNetwork]) -> bool:
    """Is *address* inside one of *networks* (see :func:`connected_networks`)?"""
    return OnlinkFilter(networks)(address)


class OnlinkFilter:
    """:func:`maybe_onlink` for many addresses (integer masks, no ipaddress objects)."""

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self._nets: dict[int, list[tuple[int, int]]] = {4: [], 16: []}
        for n in networks:
            self._nets[4 if n.version == 4 else 16].append(
                (int(n.network_address), int(n.netmask)))

    def __call__(self, address: str) -> bool:
        try:  # inet_pton: a pure parser, much faster than ipaddress
            packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET,
                                      address)
        except (OSError, ValueError):
            return False
        value = int.from_bytes(packed, "big")
        return any(value & mask == net for net, mask in self._nets[len(packed)])
