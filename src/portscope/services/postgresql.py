"""PostgreSQL (frontend/backend protocol 3): SSLRequest (and the certificate behind it),
then a startup as ``postgres`` without a password to see whether the server trusts us
(and its ``server_version`` when it does); with auth checks off, a startup with an
unsupported protocol version, whose error still names the server."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    clean,
    exchange,
    reconnect,
    send,
    starttls,
)

SSL_REQUEST = struct.pack("!II", 8, 80877103)
TERMINATE = b"X\x00\x00\x00\x04"
PRODUCT = "PostgreSQL DB"
CPE = "a:postgresql:postgresql"


def startup(user: str = "postgres", database: str = "postgres",
            protocol: int = 196608) -> bytes:
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in (
        ("user", user), ("database", database), ("application_name", "portscope"))) + b"\0"
    return struct.pack("!II", 8 + len(params), protocol) + params


UNSUPPORTED_STARTUP = struct.pack("!II", 8, (9999 << 16) | 0)


@dataclass
class Backend:
    """What the server's messages said."""

    messages: list[str] = field(default_factory=list)
    auth: int | None = None  # 0 ok, 3 cleartext, 5 md5, 10 SASL ...
    sasl: list[str] = field(default_factory=list)
    error: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    valid: bool = True


def parse_backend(data: bytes) -> Backend:
    out = Backend()
    pos = 0
    while pos + 5 <= len(data) and len(out.messages) < 200:
        mtype = chr(data[pos])
        length = struct.unpack_from("!I", data, pos + 1)[0]
        if length < 4 or length > 65536 or not mtype.isalpha():
            out.valid = False
            break
        if pos + 1 + length > len(data):
            break
        body = data[pos + 5: pos + 1 + length]
        pos += 1 + length
        out.messages.append(mtype)
        if mtype == "R" and len(body) >= 4:
            out.auth = struct.unpack_from("!I", body)[0]
            if out.auth == 10:
                out.sasl = [clean(m, 40) for m in body[4:].split(b"\0") if m][:8]
        elif mtype == "E":
            for part in body.split(b"\0"):
                if len(part) >= 1:
                    out.error[chr(part[0])] = clean(part[1:], 300)
        elif mtype == "S":
            k, _, v = body.partition(b"\0")
            out.params[clean(k, 64)] = clean(v.rstrip(b"\0"), 200)
        elif mtype == "Z":
            out.ready = True
    return out


def backend_complete(data: bytes) -> bool:
    b = parse_backend(data)
    if not b.valid or b.ready or "E" in b.messages:
        return True
    return b.auth is not None and b.auth != 0


_RANGE = re.compile(r"server supports (\d+)\.(\d+) to (\d+)\.(\d+)")


def _from_error(b: Backend, facts: Facts) -> None:
    msg = b.error.get("M", "")
    m = _RANGE.search(msg)
    if m:
        lo, hi = (int(m.group(1)), int(m.group(2))), (int(m.group(3)), int(m.group(4)))
        if lo == (2, 0):
            facts.version = facts.version or "7.4 - 13"
        elif hi == (3, 0):
            facts.version = facts.version or "14 - 17"
        elif hi >= (3, 2):
            facts.version = facts.version or "18 or later"


def _record(b: Backend, facts: Facts) -> None:
    if not b.valid or not b.messages or b.messages[0] not in ("R", "E", "N", "v"):
        return
    facts.identify("postgresql", 10, "probe")
    facts.set_product(PRODUCT)
    if b.auth == 0:
        facts.extra["auth_required"] = False
    elif b.auth is not None:
        facts.extra["auth_required"] = True
        method = {3: "password", 5: "md5", 10: "SASL"}.get(b.auth, str(b.auth))
        facts.extra["auth_method"] = method
        if b.sasl:
            facts.extra["sasl_mechanisms"] = b.sasl
    code = b.error.get("C")
    if code:
        facts.extra["error"] = clean(f"{code} {b.error.get('M', '')}", 300)
        if code in ("28000", "28P01"):
            facts.extra["auth_required"] = True
        elif code == "3D000":
            facts.extra["auth_required"] = False  # authenticated, only the database is missing
    version = b.params.get("server_version")
    if version:
        num, _, rest = version.partition(" ")
        facts.version = num
        extrainfo = rest.strip().strip("()")
        if extrainfo:
            facts.extrainfo = extrainfo
            if "Debian" in extrainfo or "Ubuntu" in extrainfo:
                facts.extra.setdefault("ostype", "Linux")
    _from_error(b, facts)
    facts.cpe = [rules.cpe(CPE, facts.version if version else None)]


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(SSL_REQUEST, lambda d: len(d) >= 1, limit=1024)
    facts.saw(r.data)
    if r.data == b"S":
        facts.identify("postgresql", 6, "probe")
        facts.extra["ssl"] = True
        if ctx.intensity >= 2 and not ctx.tls:
            yield from starttls()
    elif r.data == b"N":
        facts.identify("postgresql", 5, "probe")
        facts.extra["ssl"] = False
    elif r.data[:1] == b"E":
        b = parse_backend(r.data)
        _record(b, facts)
        return
    else:
        return
    if not (yield from reconnect()):
        return
    if ctx.auth_checks:
        r = yield from exchange(startup(), backend_complete, limit=65536)
        b = parse_backend(r.data)
        _record(b, facts)
        if b.ready or b.auth == 0:
            yield from send(TERMINATE)
    else:
        r = yield from exchange(UNSUPPORTED_STARTUP, backend_complete, limit=65536)
        _record(parse_backend(r.data), facts)


def starttls_prelude(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(SSL_REQUEST, lambda d: len(d) >= 1, limit=16)
    if r.data == b"S":
        yield from starttls()


PROTOCOL = ServiceProtocol(name="postgresql", dialog=dialog, rarity=4,
                           hints=("postgresql",), starttls=starttls_prelude)
