"""Redis (RESP): ``INFO server`` without authentication, then ``QUIT``."""

from __future__ import annotations

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    clean,
    exchange,
    line_complete,
)

INFO = b"INFO server\r\n"


def reply_complete(data: bytes) -> bool:
    """One RESP reply: a simple/error line, or a bulk string of its announced length."""
    if not data:
        return False
    if data[:1] == b"$":
        head, sep, body = data.partition(b"\r\n")
        if not sep:
            return len(data) > 32
        try:
            n = int(head[1:])
        except ValueError:
            return True
        return n < 0 or len(body) >= n + 2
    return b"\n" in data


def parse_info(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[clean(k, 64)] = clean(v, 200)
    return out


def recognize(data: bytes) -> int:
    if data.startswith((b"-NOAUTH", b"-DENIED", b"-ERR wrong number", b"+PONG")):
        return 9
    if data.startswith(b"$") and b"redis_version:" in data[:400]:
        return 10
    return 0


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(INFO, reply_complete, limit=65536)
    facts.saw(r.data)
    data = r.data
    if data.startswith(b"$"):
        body = data.partition(b"\r\n")[2]
        info = parse_info(body.decode("latin-1"))
        version = info.get("redis_version") or info.get("valkey_version")
        if not version:
            return
        facts.identify("redis", 10, "probe")
        facts.extra["auth_required"] = False
        product = "Valkey" if info.get("server_name") == "valkey" or "valkey_version" in info \
            else "Redis key-value store"
        cpe_base = "a:lfprojects:valkey" if product == "Valkey" else "a:redis:redis"
        facts.set_product(product, version, cpe=[rules.cpe(cpe_base, version)])
        for key, fact in (("redis_version", "redis_version"), ("os", "os"),
                          ("redis_mode", "mode")):
            if key in info:
                facts.extra[fact] = info[key]
        if info.get("os", "").startswith("Linux"):
            facts.extra.setdefault("ostype", "Linux")
    elif data.startswith(b"-NOAUTH") or data.startswith(b"-ERR operation not permitted"):
        facts.identify("redis", 10, "probe")
        facts.set_product("Redis key-value store", cpe=[rules.cpe("a:redis:redis")])
        facts.extra["auth_required"] = True
    elif data.startswith(b"-DENIED"):
        facts.identify("redis", 10, "probe")
        facts.set_product("Redis key-value store", cpe=[rules.cpe("a:redis:redis")])
        facts.extra["auth_required"] = True
        facts.extrainfo = "protected mode"
    else:
        return
    yield from exchange(b"QUIT\r\n", line_complete, limit=256, timeout=1.0)


PROTOCOL = ServiceProtocol(name="redis", dialog=dialog, recognize=recognize, rarity=2,
                           hints=("redis",))
