"""rtnetlink route lookup (``ip route get``), sans-IO: the RTM_GETROUTE request for one
destination and the decoding of the kernel's answer (RTM_NEWROUTE or NLMSG_ERROR).

The engine sends :func:`route_request` on an ``AF_NETLINK``/``NETLINK_ROUTE`` socket and
hands the bytes that come back to :func:`decode_route`. Netlink uses the host's byte order
(native, ``=``); addresses in attributes are in network order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from portscope.packets.csum import pack_address, unpack_address

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
AF_INET = 2
AF_INET6 = 10
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PREFSRC = 7
RTA_TABLE = 15
RTA_VIA = 18
RTN_UNICAST = 1
RTN_LOCAL = 2

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid
# rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")  # length, type


@dataclass(frozen=True, slots=True)
class Route:
    """The kernel's route to one destination: its type (``RTN_*``), outgoing interface
    index, next-hop gateway (None: directly connected) and preferred source address."""

    type: int
    oif: int | None
    gateway: str | None
    prefsrc: str | None
    table: int = 0
    dst: str | None = None  # the destination (prefix of *dst_len* bits in a dump)
    dst_len: int = 0


@dataclass(frozen=True, slots=True)
class RouteError:
    """The kernel refused the lookup: ``errno`` (e.g. 113 EHOSTUNREACH, 101 ENETUNREACH)."""

    errno: int


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTA.pack(_RTA.size + len(value), kind) + value
    return raw + b"\x00" * (_align(len(raw)) - len(raw))


def route_request(destination: str, seq: int) -> bytes:
    """RTM_GETROUTE for *destination* (an IPv4 or IPv6 address), as ``ip route get`` sends
    it."""
    packed = pack_address(destination)
    family = AF_INET6 if len(packed) == 16 else AF_INET
    body = _RTMSG.pack(family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0) + _attr(RTA_DST, packed)
    return (
        _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST, seq & 0xFFFFFFFF, 0)
        + body
    )


def decode_route(
    data: bytes | bytearray | memoryview, seq: int | None = None
) -> Route | RouteError | None:
    """The answer to :func:`route_request` in *data* (the first message with sequence
    number *seq* when given); None when *data* holds neither a route nor an error."""
    data = bytes(data)
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size or pos + length > len(data):
            return None
        body = data[pos + _NLMSGHDR.size : pos + length]
        pos += _align(length)
        if seq is not None and mseq != seq & 0xFFFFFFFF:
            continue
        if kind == NLMSG_ERROR:
            if len(body) < 4:
                return None
            err = -struct.unpack_from("=i", body)[0]
            return RouteError(err) if err else None
        if kind != RTM_NEWROUTE or len(body) < _RTMSG.size:
            continue
        return _route_body(body)
    return None


def _route_body(body: bytes) -> Route | None:
    family, dst_len, _src_len, _tos, table, _proto, _scope, rtype, _flags = _RTMSG.unpack_from(
        body
    )
    alen = 16 if family == AF_INET6 else 4 if family == AF_INET else 0
    if not alen:
        return None
    oif = gateway = prefsrc = dst = None
    apos = _RTMSG.size
    while apos + _RTA.size <= len(body):
        rlen, kind = _RTA.unpack_from(body, apos)
        if rlen < _RTA.size or apos + rlen > len(body):
            break
        value = body[apos + _RTA.size : apos + rlen]
        if kind == RTA_OIF and len(value) == 4:
            oif = struct.unpack("=I", value)[0]
        elif kind == RTA_GATEWAY and len(value) == alen:
            gateway = unpack_address(value)
        elif kind == RTA_VIA and len(value) >= 2:
            gateway = "via"  # a next hop of another family (RFC 5549): not on-link
        elif kind == RTA_PREFSRC and len(value) == alen:
            prefsrc = unpack_address(value)
        elif kind == RTA_DST and len(value) == alen:
            dst = unpack_address(value)
        elif kind == RTA_TABLE and len(value) == 4:
            table = struct.unpack("=I", value)[0]
        apos += _align(rlen)
    if dst is None and dst_len == 0:
        dst = "::" if family == AF_INET6 else "0.0.0.0"  # a default route
    return Route(rtype, oif, gateway, prefsrc, table, dst, dst_len)


def dump_request(family: int, seq: int) -> bytes:
    """RTM_GETROUTE with NLM_F_DUMP: every route of *family* (AF_INET/AF_INET6), all
    tables, as ``ip route show table all`` asks."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return (
        _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP,
                       seq & 0xFFFFFFFF, 0)
        + body
    )


def decode_dump(data: bytes | bytearray | memoryview) -> tuple[list[Route], bool]:
    """The routes in one datagram of a dump, and whether the dump is over (NLMSG_DONE or
    an error)."""
    data = bytes(data)
    routes: list[Route] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size or pos + length > len(data):
            return routes, True
        body = data[pos + _NLMSGHDR.size : pos + length]
        pos += _align(length)
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return routes, True
        if kind == RTM_NEWROUTE and len(body) >= _RTMSG.size:
            route = _route_body(body)
            if route is not None:
                routes.append(route)
    return routes, False


def route_reply(route: Route, seq: int, *, family: int = AF_INET) -> bytes:
    """The RTM_NEWROUTE message the kernel would send for *route* (for tests and fakes)."""
    attrs = b""
    if route.oif is not None:
        attrs += _attr(RTA_OIF, struct.pack("=I", route.oif))
    if route.gateway is not None:
        attrs += _attr(RTA_GATEWAY, pack_address(route.gateway))
    if route.prefsrc is not None:
        attrs += _attr(RTA_PREFSRC, pack_address(route.prefsrc))
    attrs += _attr(RTA_TABLE, struct.pack("=I", route.table))
    alen = 128 if family == AF_INET6 else 32
    if route.dst is not None:
        attrs += _attr(RTA_DST, pack_address(route.dst))
        alen = route.dst_len
    body = _RTMSG.pack(family, alen, 0, 0, min(route.table, 255), 0, 0, route.type, 0) + attrs
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_NEWROUTE, 0, seq, 0) + body
