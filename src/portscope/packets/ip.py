"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers.

``decode_ip`` looks at the version nibble and returns a :class:`Packet`: the header, the
upper-layer protocol (after IPv6 extension headers) and its payload. Truncated, mis-sized
or non-IP input gives ``None``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from portscope.packets.csum import checksum, pack_address, unpack_address

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
# IPv6 extension headers walked by the decoder
EXT_HOP_BY_HOP = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DEST_OPTS = 60
EXT_AUTH = 51
NO_NEXT_HEADER = 59
_EXTENSIONS = frozenset({EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_DEST_OPTS, EXT_AUTH})

FLAG_DF = 0x2
FLAG_MF = 0x1

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")


@dataclass(frozen=True, slots=True)
class IPv4:
    src: str
    dst: str
    proto: int
    ttl: int = 64
    ident: int = 0
    tos: int = 0
    flags: int = 0  # FLAG_DF | FLAG_MF
    frag_offset: int = 0  # in 8-byte units
    options: bytes = b""
    total_length: int = 0  # decoded value (0 = computed when encoding)
    checksum: int = 0  # decoded value (computed when encoding)

    version = 4

    @property
    def header_length(self) -> int:
        return 20 + len(self.options)

    def encode(self, payload: bytes = b"") -> bytes:
        """Header (with its checksum) + *payload*. Options are padded to 32 bits."""
        opts = self.options + b"\x00" * (-len(self.options) % 4)
        if len(opts) > 40:
            raise ValueError("IPv4 options longer than 40 bytes")
        ihl = 5 + len(opts) // 4
        total = ihl * 4 + len(payload)
        if total > 0xFFFF:
            raise ValueError("IPv4 packet longer than 65535 bytes")
        head = _V4.pack(0x40 | ihl, self.tos, total, self.ident,
                        (self.flags << 13) | self.frag_offset, self.ttl, self.proto, 0,
                        pack_address(self.src), pack_address(self.dst)) + opts
        csum = checksum(head)
        return head[:10] + csum.to_bytes(2, "big") + head[12:] + payload

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags & FLAG_DF)


@dataclass(frozen=True, slots=True)
class IPv6:
    src: str
    dst: str
    next_header: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int = 0  # decoded value (computed when encoding)

    version = 6

    @property
    def proto(self) -> int:
        return self.next_header

    @property
    def ttl(self) -> int:
        return self.hop_limit

    def encode(self, payload: bytes = b"") -> bytes:
        if len(payload) > 0xFFFF:
            raise ValueError("IPv6 payload longer than 65535 bytes (no jumbograms)")
        first = (6 << 28) | (self.traffic_class << 20) | (self.flow_label & 0xFFFFF)
        return _V6.pack(first, len(payload), self.next_header, self.hop_limit,
                        pack_address(self.src), pack_address(self.dst)) + payload


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded IP packet: header, upper-layer protocol and its bytes."""

    header: IPv4 | IPv6
    proto: int  # upper-layer protocol (after IPv6 extension headers)
    payload: bytes
    fragment: bool = False  # a non-first fragment: payload is not a transport header
    checksum_ok: bool = True  # IPv4 header checksum (IPv6 has none)

    @property
    def src(self) -> str:
        return self.header.src

    @property
    def dst(self) -> str:
        return self.header.dst

    @property
    def ttl(self) -> int:
        return self.header.ttl


def decode_ipv4(data: bytes | bytearray | memoryview, *, truncated_ok: bool = False
                ) -> Packet | None:
    """Decode an IPv4 packet. *truncated_ok* accepts a packet shorter than its total
    length (the quoted packet inside an ICMP error)."""
    data = bytes(data)
    if len(data) < 20:
        return None
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _V4.unpack_from(data)
    if vihl >> 4 != 4:
        return None
    hlen = (vihl & 0xF) * 4
    if hlen < 20 or len(data) < hlen:
        return None
    if total < hlen:
        return None
    if total > len(data):
        if not truncated_ok:
            return None
        total = len(data)
    header = IPv4(src=unpack_address(src), dst=unpack_address(dst), proto=proto, ttl=ttl,
                  ident=ident, tos=tos, flags=frag >> 13, frag_offset=frag & 0x1FFF,
                  options=data[20:hlen], total_length=total, checksum=csum)
    ok = checksum(data[:hlen]) == 0
    return Packet(header, proto, data[hlen:total], fragment=(frag & 0x1FFF) != 0,
                  checksum_ok=ok)


def decode_ipv6(data: bytes | bytearray | memoryview, *, truncated_ok: bool = False
                ) -> Packet | None:
    """Decode an IPv6 packet, skipping extension headers to the upper layer."""
    data = bytes(data)
    if len(data) < 40:
        return None
    first, plen, nh, hlim, src, dst = _V6.unpack_from(data)
    if first >> 28 != 6:
        return None
    end = 40 + plen
    if end > len(data):
        if not truncated_ok:
            return None
        end = len(data)
    header = IPv6(src=unpack_address(src), dst=unpack_address(dst), next_header=nh,
                  hop_limit=hlim, traffic_class=(first >> 20) & 0xFF,
                  flow_label=first & 0xFFFFF, payload_length=plen)
    off = 40
    proto = nh
    fragment = False
    for _ in range(16):  # a bound against hostile chains
        if proto not in _EXTENSIONS:
            break
        if off + 8 > end:
            return None
        nxt = data[off]
        if proto == EXT_FRAGMENT:
            length = 8
            if int.from_bytes(data[off + 2:off + 4], "big") >> 3:
                fragment = True
        elif proto == EXT_AUTH:
            length = (data[off + 1] + 2) * 4
        else:
            length = (data[off + 1] + 1) * 8
        off += length
        proto = nxt
        if off > end:
            return None
    else:
        return None
    return Packet(header, proto, data[off:end], fragment=fragment)


def decode_ip(data: bytes | bytearray | memoryview, *, truncated_ok: bool = False
              ) -> Packet | None:
    """Decode an IPv4 or IPv6 packet by its version nibble."""
    if not data:
        return None
    version = data[0] >> 4
    if version == 4:
        return decode_ipv4(data, truncated_ok=truncated_ok)
    if version == 6:
        return decode_ipv6(data, truncated_ok=truncated_ok)
    return None
