"""X11: a connection setup without authorization data; the server accepts, refuses
(with a reason) or asks for authentication. When it accepts, the vendor and release
(X.Org's encodes the xorg-server version) name the server, and one QueryExtension
("VNC-EXTENSION") tells an Xvnc (TigerVNC, RealVNC) from a desktop's X server."""

from __future__ import annotations

import struct

from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, exchange
from portscope.services.rules import cpe

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


XORG_VENDOR = "The X.Org Foundation"
VNC_EXTENSION = b"VNC-EXTENSION"


def xorg_version(release: int) -> str | None:
    """X.Org's VendorRelease (major*10^7 + minor*10^5 + patch*10^3 + snap) as the
    xorg-server version: 12101006 -> "21.1.6" (1.21 and later dropped the "1."),
    12013000 -> "1.20.13"."""
    if not 10_000_000 <= release < 100_000_000:
        return None
    major, minor = release // 10_000_000, release // 100_000 % 100
    patch, snap = release // 1000 % 100, release % 1000
    if major == 1 and minor >= 21:
        return f"{minor}.{patch}.{snap}"
    return f"{major}.{minor}.{patch}" + (f".{snap}" if snap else "")


def query_extension(name: bytes) -> bytes:
    """QueryExtension (opcode 98) in the little-endian byte order of :data:`SETUP`."""
    pad = (4 - len(name) % 4) % 4
    return struct.pack("<BBHHH", 98, 0, 2 + (len(name) + pad) // 4, len(name), 0) + name + \
        bytes(pad)


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(SETUP, setup_complete, limit=65536)
    info = parse_setup(r.data)
    if info is None:
        facts.saw(r.data)
        return
    # the accepted setup is kilobytes of screens and formats: the evidence is its head
    # up to the vendor string, a refusal its reason
    # (a status-1 reply too short for the vendor length is shown whole)
    head = 40 + int(struct.unpack_from("<H", r.data, 24)[0]) \
        if info["status"] == 1 and len(r.data) >= 40 else None
    facts.saw(r.data, banner=r.data[:head] if head else None)
    facts.identify("X11", 10, "probe")
    facts.extra["auth_required"] = info["status"] != 1
    if info["status"] == 1:
        vendor = str(info.get("vendor") or "X11 server")
        release = int(str(info.get("release") or 0))
        facts.extra["vendor"] = vendor
        facts.extra["release"] = release
        if vendor == XORG_VENDOR:
            version = xorg_version(release)
            facts.set_product("X.Org", version,
                              cpe=[cpe("a:x.org:xorg-server", version)])
        else:
            facts.set_product(vendor)
        facts.extrainfo = "open"
        if ctx.intensity < 2:
            return
        r = yield from exchange(query_extension(VNC_EXTENSION), lambda d: len(d) >= 32,
                                limit=64)
        if len(r.data) >= 32 and r.data[0] == 1:
            facts.extra["vnc_extension"] = r.data[8] == 1
            if r.data[8] == 1:
                facts.extrainfo = "open; Xvnc"
    else:
        facts.set_product("X11 server")
        facts.extrainfo = "access denied"
        if info.get("reason"):
            facts.extra["error"] = info["reason"]


PROTOCOL = ServiceProtocol(name="X11", dialog=dialog, rarity=5, hints=("X11", "x11"))
