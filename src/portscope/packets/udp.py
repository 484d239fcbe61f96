"""UDP datagrams (RFC 768; over IPv6 the checksum is mandatory, RFC 8200 8.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from portscope.packets.csum import checksum, pack_address, pseudo_header_sum

PROTO_UDP = 17
_HDR = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class UDP:
    sport: int
    dport: int
    payload: bytes = b""
    length: int = 0  # decoded value (computed when encoding)
    checksum: int = 0  # decoded value (computed when encoding)

    def encode(self, src: str, dst: str) -> bytes:
        length = 8 + len(self.payload)
        if length > 0xFFFF:
            raise ValueError("UDP datagram longer than 65535 bytes")
        dgram = _HDR.pack(self.sport, self.dport, length, 0) + self.payload
        s, d = pack_address(src), pack_address(dst)
        csum = checksum(dgram, pseudo_header_sum(s, d, PROTO_UDP, length))
        if csum == 0:
            csum = 0xFFFF  # 0 means "no checksum" (RFC 768)
        return dgram[:6] + csum.to_bytes(2, "big") + dgram[8:]


def decode_udp(data: bytes | bytearray | memoryview, *, truncated_ok: bool = False
               ) -> UDP | None:
    """Decode a UDP datagram; the payload is cut at the length field. *truncated_ok*
    accepts the 8-byte header alone (ICMP quotes)."""
    data = bytes(data)
    if len(data) < 8:
        return None
    sport, dport, length, csum = _HDR.unpack_from(data)
    if length < 8:
        return None
    if length > len(data):
        if not truncated_ok:
            return None
        length = len(data)
    return UDP(sport, dport, data[8:length], length=length, checksum=csum)
