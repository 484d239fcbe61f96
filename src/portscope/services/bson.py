"""A minimal BSON codec for the MongoDB probe: encode simple command documents, decode
replies into dicts. Bounded and strict: malformed input raises :class:`BSONError`."""

from __future__ import annotations

import struct
from typing import Any


class BSONError(ValueError):
    """Malformed BSON."""


def _cstring(s: str) -> bytes:
    return s.encode() + b"\0"


def encode(doc: dict[str, Any]) -> bytes:
    body = b""
    for k, v in doc.items():
        if isinstance(v, bool):
            body += b"\x08" + _cstring(k) + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            body += b"\x10" + _cstring(k) + struct.pack("<i", v)
        elif isinstance(v, float):
            body += b"\x01" + _cstring(k) + struct.pack("<d", v)
        elif isinstance(v, str):
            raw = v.encode()
            body += b"\x02" + _cstring(k) + struct.pack("<i", len(raw) + 1) + raw + b"\0"
        elif isinstance(v, dict):
            body += b"\x03" + _cstring(k) + encode(v)
        elif isinstance(v, list):
            body += b"\x04" + _cstring(k) + encode({str(i): x for i, x in enumerate(v)})
        else:
            raise TypeError(f"cannot encode {type(v).__name__}")
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def decode(data: bytes, pos: int = 0, depth: int = 0) -> tuple[dict[str, Any], int]:
    """``(document, next position)``."""
    if depth > 20:
        raise BSONError("nested too deep")
    if pos + 5 > len(data):
        raise BSONError("truncated document")
    size = struct.unpack_from("<i", data, pos)[0]
    end = pos + size
    if size < 5 or end > len(data) or data[end - 1] != 0:
        raise BSONError("bad document size")
    p = pos + 4
    out: dict[str, Any] = {}
    while p < end - 1:
        etype = data[p]
        kend = data.find(b"\0", p + 1, end)
        if kend < 0:
            raise BSONError("bad key")
        key = data[p + 1: kend].decode("utf-8", "replace")
        p = kend + 1
        value: Any
        if etype == 0x01:
            value = struct.unpack_from("<d", data, p)[0]
            p += 8
        elif etype in (0x02, 0x0D, 0x0E):
            n = struct.unpack_from("<i", data, p)[0]
            if n < 1 or p + 4 + n > end:
                raise BSONError("bad string")
            value = data[p + 4: p + 3 + n].decode("utf-8", "replace")
            p += 4 + n
        elif etype in (0x03, 0x04):
            sub, p = decode(data, p, depth + 1)
            value = list(sub.values()) if etype == 0x04 else sub
        elif etype == 0x05:
            n = struct.unpack_from("<i", data, p)[0]
            if n < 0 or p + 5 + n > end:
                raise BSONError("bad binary")
            value = data[p + 5: p + 5 + n]
            p += 5 + n
        elif etype == 0x07:
            value = data[p: p + 12].hex()
            p += 12
        elif etype == 0x08:
            value = data[p] != 0
            p += 1
        elif etype in (0x09, 0x11, 0x12):
            value = struct.unpack_from("<q", data, p)[0]
            p += 8
        elif etype in (0x0A, 0xFF, 0x7F):
            value = None
        elif etype == 0x10:
            value = struct.unpack_from("<i", data, p)[0]
            p += 4
        elif etype == 0x13:
            value = data[p: p + 16]
            p += 16
        else:
            raise BSONError(f"unsupported element type {etype:#x}")
        if p > end:
            raise BSONError("element overruns document")
        out[key] = value
    return out, end


def loads(data: bytes) -> dict[str, Any]:
    try:
        doc, _ = decode(data)
    except (struct.error, IndexError) as exc:
        raise BSONError(str(exc)) from None
    return doc
