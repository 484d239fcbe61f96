"""MySQL / MariaDB: the server's initial handshake packet (protocol 10) or its error."""

from __future__ import annotations

import struct
from typing import Any

from portscope.services import rules
from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, recv


def packet_complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:3], "little")


def parse_greeting(data: bytes) -> dict[str, Any] | None:
    """The handshake (``{"protocol", "version", "thread_id", "auth_plugin", ...}``) or an
    error packet (``{"error": code, "message": ...}``), or None."""
    if len(data) < 5:
        return None
    length = int.from_bytes(data[:3], "little")
    if data[3] != 0 or length < 2 or length > 16384:
        return None
    body = data[4: 4 + length]
    if body[0] == 0xFF and len(body) >= 3:
        code = struct.unpack_from("<H", body, 1)[0]
        msg = body[3:]
        if msg.startswith(b"#"):
            msg = msg[6:]
        if not 1000 <= code < 5000:
            return None
        return {"error": code, "message": clean(msg, 300)}
    if body[0] not in (9, 10):
        return None
    end = body.find(b"\0", 1)
    if end < 2 or end > 100:
        return None
    version = body[1:end].decode("latin-1")
    if not version[:1].isdigit() or not version.isprintable():
        return None
    out: dict[str, Any] = {"protocol": body[0], "version": version}
    p = end + 1
    if body[0] == 10 and p + 4 + 8 + 1 + 2 <= len(body):
        out["thread_id"] = struct.unpack_from("<I", body, p)[0]
        p += 4 + 8 + 1
        caps = struct.unpack_from("<H", body, p)[0]
        p += 2
        if p + 1 + 2 + 2 + 1 + 10 <= len(body):
            p += 1 + 2
            caps |= struct.unpack_from("<H", body, p)[0] << 16
            p += 2
            auth_len = body[p]
            p += 1 + 10
            p += max(13, auth_len - 8) if caps & 0x00008000 else 0
            if caps & 0x00080000 and p < len(body):
                plugin = body[p:].split(b"\0", 1)[0]
                out["auth_plugin"] = clean(plugin, 64)
        out["capabilities"] = caps
        out["ssl"] = bool(caps & 0x00000800)
    return out


def recognize(data: bytes) -> int:
    g = parse_greeting(data)
    if g is None:
        return 0
    if "error" in g:
        return 8 if b"MySQL" in data or b"MariaDB" in data or b"Host '" in data else 4
    return 9


def dialog(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if not packet_complete(data):
        r = yield from recv(packet_complete, limit=16384)
        data += r.data
    facts.saw(data)
    g = parse_greeting(data)
    if g is None:
        return
    facts.identify("mysql", 10, "banner")
    if "error" in g:
        facts.extra["error"] = f"{g['error']} {g['message']}"
        product = "MariaDB" if "MariaDB" in g["message"] else "MySQL"
        facts.set_product(product)
        if g["error"] == 1130:
            facts.extrainfo = "unauthorized"
        return
    facts.extra["protocol"] = g["protocol"]
    if "auth_plugin" in g:
        facts.extra["auth_plugin"] = g["auth_plugin"]
    if "ssl" in g:
        facts.extra["ssl"] = g["ssl"]
    facts.extra["server_version"] = clean(g["version"], 100)
    if rules.match("mysql", g["version"], facts, service="mysql") is None:
        facts.set_product("MySQL")
    if "ubuntu" in g["version"].lower() or "deb" in g["version"].lower():
        facts.extra.setdefault("ostype", "Linux")


PROTOCOL = ServiceProtocol(name="mysql", dialog=dialog, server_first=True,
                           recognize=recognize, hints=("mysql",))
