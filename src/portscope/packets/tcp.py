"""TCP segments (RFC 9293) and options (MSS, window scale, SACK, timestamps ...).

Options are ``(kind, data)`` pairs; NOP and EOL have ``data == b""``. ``format_options``
writes them the way nmap's OS fingerprints do (``M5B4NW7NNT11S``), so OS detection can use
this module too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

from portscope.packets.csum import checksum, pack_address, pseudo_header_sum

PROTO_TCP = 6


class TCPFlags(IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80
    AE = 0x100  # accurate ECN (formerly NS), the lowest reserved bit


OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8

TCPOption = tuple[int, bytes]

_HDR = struct.Struct("!HHIIHHHH")


def mss(value: int) -> TCPOption:
    return (OPT_MSS, value.to_bytes(2, "big"))


def wscale(shift: int) -> TCPOption:
    return (OPT_WSCALE, bytes((shift,)))


def sack_permitted() -> TCPOption:
    return (OPT_SACK_PERMITTED, b"")


def timestamp(tsval: int, tsecr: int = 0) -> TCPOption:
    return (OPT_TIMESTAMP, struct.pack("!II", tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF))


def nop() -> TCPOption:
    return (OPT_NOP, b"")


def eol() -> TCPOption:
    return (OPT_EOL, b"")


def encode_options(options: tuple[TCPOption, ...] | list[TCPOption]) -> bytes:
    """Options as bytes, padded with EOL to a multiple of 4 (at most 40 bytes)."""
    out = bytearray()
    for kind, data in options:
        if kind in (OPT_EOL, OPT_NOP):
            out.append(kind)
        else:
            out += bytes((kind, len(data) + 2)) + data
    out += b"\x00" * (-len(out) % 4)
    if len(out) > 40:
        raise ValueError("TCP options longer than 40 bytes")
    return bytes(out)


def parse_options(data: bytes) -> tuple[tuple[TCPOption, ...], bool]:
    """``(options, well_formed)``. Parsing stops at EOL (kept) or at a malformed option
    (a length below 2 or past the end), in which case ``well_formed`` is False."""
    opts: list[TCPOption] = []
    i = 0
    n = len(data)
    while i < n:
        kind = data[i]
        if kind == OPT_EOL:
            opts.append((OPT_EOL, b""))
            return tuple(opts), True
        if kind == OPT_NOP:
            opts.append((OPT_NOP, b""))
            i += 1
            continue
        if i + 1 >= n:
            return tuple(opts), False
        length = data[i + 1]
        if length < 2 or i + length > n:
            return tuple(opts), False
        opts.append((kind, bytes(data[i + 2:i + length])))
        i += length
    return tuple(opts), True


def format_options(options: tuple[TCPOption, ...] | list[TCPOption]) -> str:
    """nmap's OPS notation: M<mss hex>, W<shift hex>, N (NOP), L (EOL), S (SACK permitted),
    T<tsval!=0><tsecr!=0> (e.g. T11)."""
    out: list[str] = []
    for kind, data in options:
        if kind == OPT_EOL:
            out.append("L")
        elif kind == OPT_NOP:
            out.append("N")
        elif kind == OPT_MSS and len(data) == 2:
            out.append(f"M{int.from_bytes(data, 'big'):X}")
        elif kind == OPT_WSCALE and len(data) == 1:
            out.append(f"W{data[0]:X}")
        elif kind == OPT_SACK_PERMITTED:
            out.append("S")
        elif kind == OPT_TIMESTAMP and len(data) == 8:
            tsval, tsecr = struct.unpack("!II", data)
            out.append(f"T{int(tsval != 0)}{int(tsecr != 0)}")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class TCP:
    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    urgent: int = 0
    options: tuple[TCPOption, ...] = ()
    payload: bytes = b""
    checksum: int = 0  # decoded value (computed when encoding)
    data_offset: int = 0  # decoded, in 32-bit words
    options_ok: bool = True  # decoded options were well formed

    def encode(self, src: str, dst: str) -> bytes:
        """The segment with its checksum over the pseudo-header of *src* -> *dst*."""
        opts = encode_options(self.options)
        offset = 5 + len(opts) // 4
        flags = int(self.flags)
        head = _HDR.pack(self.sport, self.dport, self.seq & 0xFFFFFFFF, self.ack & 0xFFFFFFFF,
                         (offset << 12) | (flags & 0x1FF), self.window, 0, self.urgent)
        seg = head + opts + self.payload
        s, d = pack_address(src), pack_address(dst)
        csum = checksum(seg, pseudo_header_sum(s, d, PROTO_TCP, len(seg)))
        return seg[:16] + csum.to_bytes(2, "big") + seg[18:]

    def option(self, kind: int) -> bytes | None:
        for k, data in self.options:
            if k == kind:
                return data
        return None

    @property
    def mss(self) -> int | None:
        data = self.option(OPT_MSS)
        return int.from_bytes(data, "big") if data is not None and len(data) == 2 else None

    @property
    def wscale(self) -> int | None:
        data = self.option(OPT_WSCALE)
        return data[0] if data is not None and len(data) == 1 else None

    @property
    def timestamps(self) -> tuple[int, int] | None:
        data = self.option(OPT_TIMESTAMP)
        if data is None or len(data) != 8:
            return None
        tsval, tsecr = struct.unpack("!II", data)
        return int(tsval), int(tsecr)


def decode_tcp(data: bytes | bytearray | memoryview, *, truncated_ok: bool = False
               ) -> TCP | None:
    """Decode a TCP segment. *truncated_ok*: accept fewer bytes than the data offset says
    (ICMP quotes often carry only the first 8 bytes: then only ports and seq are real)."""
    data = bytes(data)
    if len(data) < 20:
        if truncated_ok and len(data) >= 8:
            sport, dport, seq = struct.unpack_from("!HHI", data)
            return TCP(sport, dport, seq, options_ok=False)
        return None
    sport, dport, seq, ack, off_flags, window, csum, urgent = _HDR.unpack_from(data)
    offset = off_flags >> 12
    hlen = offset * 4
    if hlen < 20:
        return None
    if hlen > len(data):
        if not truncated_ok:
            return None
        hlen = len(data)
    options, ok = parse_options(data[20:hlen])
    return TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=off_flags & 0x1FF,
               window=window, urgent=urgent, options=options, payload=data[hlen:],
               checksum=csum, data_offset=offset, options_ok=ok)


def verify_tcp(segment: bytes, src: str, dst: str) -> bool:
    """Is the checksum of *segment* (as received from *src* to *dst*) right?"""
    s, d = pack_address(src), pack_address(dst)
    return checksum(segment, pseudo_header_sum(s, d, PROTO_TCP, len(segment))) == 0
