"""POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS)."""

from __future__ import annotations

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    bounded_list,
    clean,
    exchange,
    line_complete,
    recv,
    starttls,
)
from portscope.services.textproto import first_line, pop3_multiline_complete


def recognize(data: bytes) -> int:
    if data.startswith(b"+OK"):
        return 9
    if data.startswith(b"-ERR"):
        return 4
    return 0


def capabilities(data: bytes) -> list[str] | None:
    if not data.startswith(b"+OK"):
        return None
    lines = data.split(b"\n")[1:]
    caps = []
    for raw in lines:
        line = raw.rstrip(b"\r")
        if line == b".":
            break
        caps.append(clean(line, 200))
    return bounded_list(caps)


def cleartext_auth(caps: list[str]) -> bool:
    upper = [c.upper() for c in caps]
    if "USER" in upper:
        return True
    for c in upper:
        if c.startswith("SASL") and any(m in c.split() for m in ("PLAIN", "LOGIN")):
            return True
    return False


def dialog(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if not line_complete(data):
        r = yield from recv(line_complete, limit=4096)
        data += r.data
    facts.saw(data)
    line = first_line(data)
    if not line.startswith("+OK"):
        if line.startswith("-ERR"):
            facts.identify("pop3", 5, "banner")
        return
    facts.identify("pop3", 8, "banner")
    rules.match("pop3", line, facts, service="pop3")
    r = yield from exchange(b"CAPA\r\n", pop3_multiline_complete, limit=8192)
    caps = capabilities(r.data)
    if caps is not None:
        facts.identify("pop3", 10, "banner")
        facts.extra["capabilities"] = caps
        upper = [c.upper() for c in caps]
        facts.extra["starttls"] = "STLS" in upper
        if not ctx.tls:
            facts.extra["cleartext_auth"] = cleartext_auth(caps)
        for c in caps:
            if c.upper().startswith("IMPLEMENTATION "):
                facts.extra["implementation"] = c[15:]
                rules.match("pop3", c, facts, service="pop3")
    if facts.extra.get("starttls") and not ctx.tls and ctx.intensity >= 2:
        r = yield from exchange(b"STLS\r\n", line_complete, limit=4096)
        if r.data.startswith(b"+OK"):
            result = yield from starttls()
            if not result.ok:
                return
    yield from exchange(b"QUIT\r\n", line_complete, limit=1024, timeout=1.0)


def starttls_prelude(ctx: Context, facts: Facts) -> Dialog:
    r = yield from recv(line_complete, limit=4096)
    if not r.data.startswith(b"+OK"):
        return
    r = yield from exchange(b"STLS\r\n", line_complete, limit=4096)
    if r.data.startswith(b"+OK"):
        yield from starttls()


PROTOCOL = ServiceProtocol(
    name="pop3", dialog=dialog, server_first=True, recognize=recognize, hints=("pop3",),
    tls_hints=("pop3s",), starttls=starttls_prelude,
)
