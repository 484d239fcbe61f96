"""X11: a connection setup without authorization data; the server accepts, refuses
(with a reason) or asks for authentication."""

from __future__ import annotations

import struct

from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, exchange

# little-endian, protocol 11.0, no authorization
SETUP = b"l\x00" + struct.pack("<HHHH", 11, 0, 0, 0) + b"\x00\x00"


def setup_complete(data: bytes) -> bool:
    if len(data) < 8:
        return False
    extra = int(struct.unpack_from("<H", data, 6)[0]) * 4
    return len(data) >= 8 + extra


def parse_setup(data: bytes) -> dict[str, object] | None:
    if len(data) < 8 or data[0] not in (0, 1, 2):
        return None
    major, minor, extra = struct.unpack_from("<HHH", data, 2)
    if data[0] in (0, 1) and major != 11:
        return None
    out: dict[str, object] = {"status": data[0], "major": major, "minor": minor}
    if data[0] == 0:
        n = data[1]
        out["reason"] = clean(data[8: 8 + n], 300)
    elif data[0] == 1 and len(data) >= 40:
        release = struct.unpack_from("<I", data, 8)[0]
        vlen = struct.unpack_from("<H", data, 24)[0]
        out["release"] = release
        out["vendor"] = clean(data[40: 40 + vlen], 100)
    elif data[0] == 2:
        out["reason"] = clean(data[8: 8 + extra], 300)
    return out


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(SETUP, setup_complete, limit=65536)
    facts.saw(r.data)
    info = parse_setup(r.data)
    if info is None:
        return
    facts.identify("X11", 10, "probe")
    facts.extra["auth_required"] = info["status"] != 1
    if info["status"] == 1:
        vendor = str(info.get("vendor") or "X11 server")
        facts.set_product(vendor)
        facts.extrainfo = "open"
    else:
        facts.set_product("X11 server")
        facts.extrainfo = "access denied"
        if info.get("reason"):
            facts.extra["error"] = info["reason"]


PROTOCOL = ServiceProtocol(name="X11", dialog=dialog, rarity=5, hints=("X11", "x11"))
