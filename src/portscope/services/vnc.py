"""VNC / RFB (RFC 6143): protocol version and offered security types."""

from __future__ import annotations

import re

from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    clean,
    exchange,
    recv,
)

_VERSION = re.compile(rb"^RFB (\d{3})\.(\d{3})\n")

SECURITY_TYPES = {0: "Invalid", 1: "None", 2: "VNC Authentication", 5: "RA2", 6: "RA2ne",
                  16: "Tight", 17: "Ultra", 18: "TLS", 19: "VeNCrypt", 20: "GTK-VNC SASL",
                  21: "MD5 hash authentication", 22: "Colin Dean xvp", 30: "Apple Remote Desktop",
                  35: "Apple", 113: "MS-Logon II"}


def recognize(data: bytes) -> int:
    return 10 if _VERSION.match(data) else (6 if data.startswith(b"RFB ") else 0)


def security_complete(data: bytes) -> bool:
    if not data:
        return False
    n = data[0]
    if n == 0:
        return len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[1:5], "big")
    return len(data) >= 1 + n


def dialog(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if len(data) < 12:
        r = yield from recv(lambda d: len(data + d) >= 12, limit=64)
        data += r.data
    facts.saw(data)
    m = _VERSION.match(data)
    if m is None:
        return
    major, minor = int(m.group(1)), int(m.group(2))
    facts.identify("vnc", 10, "banner")
    facts.extra["protocol_version"] = f"RFB {m.group(1).decode()}.{m.group(2).decode()}"
    facts.set_product("VNC", extrainfo=f"protocol {major}.{minor}")
    if (major, minor) == (3, 889):
        facts.set_product("Apple remote desktop vnc")
        facts.extra.setdefault("ostype", "Mac OS X")
    if major != 3 or ctx.intensity < 1:
        return
    if minor < 7:
        r = yield from exchange(b"RFB 003.003\n", lambda d: len(d) >= 4, limit=1024)
        if len(r.data) < 4:
            return
        code = int.from_bytes(r.data[:4], "big")
        types = [code] if code else []
    else:
        r = yield from exchange(b"RFB 003.008\n" if minor >= 8 else b"RFB 003.007\n",
                                security_complete, limit=1024)
        if not r.data:
            return
        n = r.data[0]
        if n == 0:
            reason = r.data[5:]
            facts.extra["error"] = clean(reason, 300)
            return
        types = list(r.data[1: 1 + n])
    names = [SECURITY_TYPES.get(t, f"type {t}") for t in types]
    facts.extra["security_types"] = names
    facts.extra["auth_required"] = "None" not in names


PROTOCOL = ServiceProtocol(name="vnc", dialog=dialog, server_first=True, recognize=recognize,
                           hints=("vnc", "vnc-http"))
