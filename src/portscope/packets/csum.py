"""The Internet checksum (RFC 1071), pseudo-headers, and RFC 1624 incremental updates."""

from __future__ import annotations

import ipaddress
import sys
from array import array

_LITTLE = sys.byteorder == "little"


def ones_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The one's-complement sum of *data* as big-endian 16-bit words (odd length padded),
    folded to 16 bits. ``initial`` is a folded or unfolded partial sum to start from."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    words = array("H", bytes(data))
    if _LITTLE:
        words.byteswap()
    s = sum(words) + initial
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The Internet checksum of *data* (plus a pseudo-header sum *initial*)."""
    return ~ones_sum(data, initial) & 0xFFFF


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv4 (4-byte addresses) or IPv6 (16-byte) pseudo-header."""
    if len(src) == 4:
        head = src + dst + bytes((0, proto)) + length.to_bytes(2, "big")
    else:
        head = src + dst + length.to_bytes(4, "big") + b"\x00\x00\x00" + bytes((proto,))
    return ones_sum(head)


def incremental_update(old_checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: the checksum after one 16-bit word changed from *old_word* to
    *new_word*: ``HC' = ~(~HC + ~m + m')``."""
    s = (~old_checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    return ~fold(s) & 0xFFFF


def pack_address(address: str) -> bytes:
    """``"198.18.0.2"`` -> 4 bytes, ``"2001:db8::2"`` -> 16 bytes."""
    return ipaddress.ip_address(address).packed


def unpack_address(packed: bytes) -> str:
    return str(ipaddress.ip_address(bytes(packed)))
