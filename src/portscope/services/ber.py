"""A minimal BER codec (X.690) for the probes that need ASN.1: SNMP and LDAP.

Only definite lengths and one-byte tags (all SNMP and LDAP use). Decoding never trusts
a length: anything inconsistent raises :class:`BERError`, which the protocol modules
turn into "not this protocol"."""

from __future__ import annotations

from collections.abc import Iterator

INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
ENUMERATED = 0x0A
SEQUENCE = 0x30
SET = 0x31


class BERError(ValueError):
    """Malformed BER."""


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def integer(value: int, tag: int = INTEGER) -> bytes:
    n = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(n, "big", signed=True))


def octets(value: bytes | str, tag: int = OCTET_STRING) -> bytes:
    return tlv(tag, value.encode() if isinstance(value, str) else value)


def null(tag: int = NULL) -> bytes:
    return tlv(tag, b"")


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(OID, body)


def sequence(*items: bytes, tag: int = SEQUENCE) -> bytes:
    return tlv(tag, b"".join(items))


def read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """``(tag, content, next position)`` of the element at *pos*."""
    if pos + 2 > len(data):
        raise BERError("truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise BERError("multi-byte tags are not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        n = first
    else:
        k = first & 0x7F
        if k == 0 or k > 4 or pos + k > len(data):
            raise BERError("bad length")
        n = int.from_bytes(data[pos: pos + k], "big")
        pos += k
    if pos + n > len(data):
        raise BERError("truncated content")
    return tag, data[pos: pos + n], pos + n


def items(content: bytes) -> Iterator[tuple[int, bytes]]:
    """The elements inside a constructed value."""
    pos = 0
    count = 0
    while pos < len(content):
        tag, value, pos = read(content, pos)
        count += 1
        if count > 10000:
            raise BERError("too many elements")
        yield tag, value


def children(content: bytes) -> list[tuple[int, bytes]]:
    return list(items(content))


def to_int(content: bytes) -> int:
    if not content or len(content) > 16:
        raise BERError("bad integer")
    return int.from_bytes(content, "big", signed=True)


def to_oid(content: bytes) -> str:
    if not content or len(content) > 128:
        raise BERError("bad OID")
    first = content[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for b in content[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def complete(data: bytes) -> bool:
    """``Recv.complete`` for one whole top-level element."""
    if len(data) < 2:
        return False
    first = data[1]
    if first < 0x80:
        return len(data) >= 2 + first
    k = first & 0x7F
    if k == 0 or k > 4:
        return True  # malformed: stop reading
    if len(data) < 2 + k:
        return False
    return len(data) >= 2 + k + int.from_bytes(data[2: 2 + k], "big")
