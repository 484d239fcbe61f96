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


def failure_complete(data: bytes) -> bool:
    """RFB 3.3 security: a u32 type, or 0 followed by a u32 length and the reason."""
    if len(data) < 4:
        return False
    if int.from_bytes(data[:4], "big") != 0:
        return True
    return len(data) >= 8 and len(data) >= 8 + int.from_bytes(data[4:8], "big")


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
        answer = data[12:]  # TigerVNC's lockout follows the greeting unasked
        if not answer:
            r = yield from exchange(b"RFB 003.003\n", failure_complete, limit=1024)
            answer = r.data
        elif not failure_complete(answer):
            r = yield from recv(lambda d: failure_complete(answer + d), limit=1024)
            answer += r.data
        if len(answer) < 4:
            return
        code = int.from_bytes(answer[:4], "big")
        if code == 0:
            # a connection failure with its reason: TigerVNC greets a blacklisted address
            # with "RFB 003.003" and "Too many security failures" whatever it speaks
            why = clean(answer[8:], 300)
            if why:
                facts.extra["error"] = why
                if "too many" in why.lower():
                    facts.extra["locked_out"] = True
                    facts.extrainfo = f"protocol {major}.{minor}; locked out"
            return
        types = [code]
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
