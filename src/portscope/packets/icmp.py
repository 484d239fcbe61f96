"""ICMP (RFC 792) and ICMPv6 (RFC 4443): echo, timestamp, errors with their quoted packet.

An error message quotes the start of the packet that caused it; :class:`Quoted` gives the
quoted addresses, protocol and the first bytes of its transport header (ports, TCP
sequence number), which is what a scanner needs to match the error to its probe.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from portscope.packets.csum import checksum, pack_address, pseudo_header_sum
from portscope.packets.ip import decode_ipv4, decode_ipv6

PROTO_ICMP = 1
PROTO_ICMPV6 = 58

# ICMPv4 types
ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12
TIMESTAMP_REQUEST = 13
TIMESTAMP_REPLY = 14
ADDRESS_MASK_REQUEST = 17
ADDRESS_MASK_REPLY = 18
ERROR_TYPES = frozenset({DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM})

# ICMPv4 destination-unreachable codes
UNREACH_NET = 0
UNREACH_HOST = 1
UNREACH_PROTOCOL = 2
UNREACH_PORT = 3
UNREACH_NEEDFRAG = 4
UNREACH_NET_PROHIB = 9
UNREACH_HOST_PROHIB = 10
UNREACH_ADMIN_PROHIB = 13

# ICMPv6 types
V6_DEST_UNREACH = 1
V6_PACKET_TOO_BIG = 2
V6_TIME_EXCEEDED = 3
V6_PARAM_PROBLEM = 4
V6_ECHO_REQUEST = 128
V6_ECHO_REPLY = 129
V6_NEIGHBOR_SOLICIT = 135
V6_NEIGHBOR_ADVERT = 136
V6_ERROR_TYPES = frozenset({V6_DEST_UNREACH, V6_PACKET_TOO_BIG, V6_TIME_EXCEEDED,
                            V6_PARAM_PROBLEM})

# ICMPv6 destination-unreachable codes
V6_UNREACH_NO_ROUTE = 0
V6_UNREACH_ADMIN = 1
V6_UNREACH_BEYOND_SCOPE = 2
V6_UNREACH_ADDRESS = 3
V6_UNREACH_PORT = 4
V6_UNREACH_POLICY = 5
V6_UNREACH_REJECT_ROUTE = 6

_HEAD = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class Quoted:
    """The packet quoted in an ICMP error (as much of it as the error carried)."""

    src: str
    dst: str
    proto: int
    ident: int  # IPv4 identification (0 for IPv6)
    sport: int | None  # TCP/UDP source port, if quoted
    dport: int | None
    seq: int | None  # TCP sequence number, if quoted
    transport: bytes  # the quoted transport bytes (often just 8)


def decode_quoted(data: bytes) -> Quoted | None:
    """The quoted IP packet of an error message (ICMP or ICMPv6), or None."""
    pkt = decode_ipv4(data, truncated_ok=True) if data[:1] and data[0] >> 4 == 4 else \
        decode_ipv6(data, truncated_ok=True)
    if pkt is None:
        return None
    t = pkt.payload
    sport = dport = seq = None
    if not pkt.fragment and len(t) >= 4 and pkt.proto in (6, 17, 132):
        sport, dport = struct.unpack_from("!HH", t)
        if pkt.proto == 6 and len(t) >= 8:
            seq = int.from_bytes(t[4:8], "big")
    ident = getattr(pkt.header, "ident", 0)
    return Quoted(pkt.src, pkt.dst, pkt.proto, ident, sport, dport, seq, t)


@dataclass(frozen=True, slots=True)
class ICMP:
    """An ICMPv4 message. ``rest`` is the 4 bytes after the checksum (identifier and
    sequence for echo/timestamp; unused/MTU/pointer for errors); ``body`` the rest."""

    type: int
    code: int = 0
    rest: bytes = b"\x00\x00\x00\x00"
    body: bytes = b""
    checksum: int = 0  # decoded value (computed when encoding)

    def encode(self) -> bytes:
        if len(self.rest) != 4:
            raise ValueError("ICMP 'rest of header' must be 4 bytes")
        msg = _HEAD.pack(self.type, self.code, 0) + self.rest + self.body
        return msg[:2] + checksum(msg).to_bytes(2, "big") + msg[4:]

    @property
    def ident(self) -> int:
        return int.from_bytes(self.rest[:2], "big")

    @property
    def sequence(self) -> int:
        return int.from_bytes(self.rest[2:4], "big")

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    def quoted(self) -> Quoted | None:
        return decode_quoted(self.body) if self.is_error else None

    @property
    def timestamps(self) -> tuple[int, int, int] | None:
        """(originate, receive, transmit) of a timestamp request/reply."""
        if self.type not in (TIMESTAMP_REQUEST, TIMESTAMP_REPLY) or len(self.body) < 12:
            return None
        a, b, c = struct.unpack_from("!III", self.body)
        return int(a), int(b), int(c)


def echo_request(ident: int, seq: int, data: bytes = b"") -> ICMP:
    return ICMP(ECHO_REQUEST, 0, struct.pack("!HH", ident & 0xFFFF, seq & 0xFFFF), data)


def timestamp_request(ident: int, seq: int, originate: int = 0) -> ICMP:
    return ICMP(TIMESTAMP_REQUEST, 0, struct.pack("!HH", ident & 0xFFFF, seq & 0xFFFF),
                struct.pack("!III", originate & 0xFFFFFFFF, 0, 0))


def decode_icmp(data: bytes | bytearray | memoryview) -> ICMP | None:
    data = bytes(data)
    if len(data) < 8:
        return None
    typ, code, csum = _HEAD.unpack_from(data)
    return ICMP(typ, code, data[4:8], data[8:], checksum=csum)


@dataclass(frozen=True, slots=True)
class ICMPv6:
    """An ICMPv6 message (checksum over the IPv6 pseudo-header)."""

    type: int
    code: int = 0
    rest: bytes = b"\x00\x00\x00\x00"
    body: bytes = b""
    checksum: int = 0

    def encode(self, src: str, dst: str) -> bytes:
        if len(self.rest) != 4:
            raise ValueError("ICMPv6 'rest of header' must be 4 bytes")
        msg = _HEAD.pack(self.type, self.code, 0) + self.rest + self.body
        ph = pseudo_header_sum(pack_address(src), pack_address(dst), PROTO_ICMPV6, len(msg))
        return msg[:2] + checksum(msg, ph).to_bytes(2, "big") + msg[4:]

    @property
    def ident(self) -> int:
        return int.from_bytes(self.rest[:2], "big")

    @property
    def sequence(self) -> int:
        return int.from_bytes(self.rest[2:4], "big")

    @property
    def is_error(self) -> bool:
        return self.type in V6_ERROR_TYPES

    def quoted(self) -> Quoted | None:
        return decode_quoted(self.body) if self.is_error else None


def echo_request6(ident: int, seq: int, data: bytes = b"") -> ICMPv6:
    return ICMPv6(V6_ECHO_REQUEST, 0, struct.pack("!HH", ident & 0xFFFF, seq & 0xFFFF), data)


def decode_icmpv6(data: bytes | bytearray | memoryview) -> ICMPv6 | None:
    data = bytes(data)
    if len(data) < 8:
        return None
    typ, code, csum = _HEAD.unpack_from(data)
    return ICMPv6(typ, code, data[4:8], data[8:], checksum=csum)
