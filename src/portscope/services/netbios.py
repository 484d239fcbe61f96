"""NetBIOS name service (RFC 1002 NBSTAT): the node's names, workgroup and MAC."""

from __future__ import annotations

import struct
from typing import Any

from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, exchange


def encode_name(name: bytes = b"*") -> bytes:
    """First-level encoding of a 16-byte NetBIOS name (padded with NULs for ``*``)."""
    raw = name.ljust(16, b"\0" if name == b"*" else b" ")[:16]
    out = bytearray([32])
    for b in raw:
        out += bytes([0x41 + (b >> 4), 0x41 + (b & 0xF)])
    return bytes(out) + b"\0"


def nbstat_request(tid: int) -> bytes:
    return struct.pack("!HHHHHH", tid & 0xFFFF, 0, 1, 0, 0, 0) + encode_name() + \
        struct.pack("!HH", 0x21, 1)


def parse_nbstat(data: bytes, tid: int) -> dict[str, Any] | None:
    if len(data) < 12:
        return None
    rid, flags, _qd, an = struct.unpack_from("!HHHH", data)
    if rid != tid & 0xFFFF or not flags & 0x8000 or an < 1:
        return None
    pos = 12
    # answer name: skip a label sequence (or a pointer)
    while pos < len(data):
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            pos += 2
            break
        pos += 1 + n
    if pos + 10 > len(data):
        return None
    rtype, _cls, _ttl, _rdlen = struct.unpack_from("!HHIH", data, pos)
    pos += 10
    if rtype != 0x21 or pos + 1 > len(data):
        return None
    count = data[pos]
    pos += 1
    names: list[dict[str, Any]] = []
    for _ in range(count):
        if pos + 18 > len(data):
            break
        raw = data[pos: pos + 15]
        suffix = data[pos + 15]
        nflags = struct.unpack_from("!H", data, pos + 16)[0]
        pos += 18
        names.append({"name": clean(raw.rstrip(b" \0"), 15), "suffix": suffix,
                      "group": bool(nflags & 0x8000)})
    mac = data[pos: pos + 6] if pos + 6 <= len(data) else b""
    return {"names": names, "mac": ":".join(f"{b:02x}" for b in mac) if mac else None}


def dialog(ctx: Context, facts: Facts) -> Dialog:
    tid = ctx.nonce & 0xFFFF
    r = yield from exchange(nbstat_request(tid), limit=4096, retries=1)
    facts.saw(r.data)
    info = parse_nbstat(r.data, tid)
    if info is None:
        return
    facts.identify("netbios-ns", 10, "probe")
    names = info["names"]
    facts.extra["names"] = names
    for n in names:
        if n["suffix"] in (0x00, 0x20) and not n["group"] and "netbios_name" not in facts.extra:
            facts.extra["netbios_name"] = n["name"]
        if n["suffix"] == 0x00 and n["group"] and "workgroup" not in facts.extra:
            facts.extra["workgroup"] = n["name"]
    mac = info["mac"]
    if mac:
        facts.extra["mac"] = mac
    if mac == "00:00:00:00:00:00":
        facts.set_product("Samba nmbd", cpe=["cpe:2.3:a:samba:samba:*:*:*:*:*:*:*:*"])
        facts.extra.setdefault("ostype", "Unix")
    elif mac:
        facts.set_product("Microsoft Windows netbios-ns")
        facts.extra.setdefault("ostype", "Windows")
    parts = [f"{k} {facts.extra[k]}" for k in ("workgroup",) if k in facts.extra]
    if "netbios_name" in facts.extra:
        parts.append(f"NetBIOS name {facts.extra['netbios_name']}")
    if parts:
        facts.extrainfo = "; ".join(parts)


PROTOCOL = ServiceProtocol(name="netbios-ns", udp=dialog, udp_rarity=3,
                           udp_hints=("netbios-ns",))
