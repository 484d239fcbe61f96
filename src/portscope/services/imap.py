"""IMAP (RFC 9051/3501): greeting, CAPABILITY, STARTTLS, LOGINDISABLED."""

from __future__ import annotations

import re

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
from portscope.services.textproto import first_line, tagged_complete

_CAPS_IN_BRACKETS = re.compile(r"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


def recognize(data: bytes) -> int:
    if data.startswith((b"* OK", b"* PREAUTH")):
        return 9
    if data.startswith(b"* BYE"):
        return 6
    return 0


def parse_capabilities(data: bytes) -> list[str] | None:
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r").decode("latin-1")
        if line.upper().startswith("* CAPABILITY "):
            return bounded_list(clean(c, 100) for c in line[13:].split())
        m = _CAPS_IN_BRACKETS.search(line)
        if m:
            return bounded_list(clean(c, 100) for c in m.group(1).split())
    return None


def _record(ctx: Context, facts: Facts, caps: list[str]) -> None:
    facts.extra["capabilities"] = caps
    upper = [c.upper() for c in caps]
    facts.extra["starttls"] = "STARTTLS" in upper
    if not ctx.tls:
        facts.extra["cleartext_auth"] = "LOGINDISABLED" not in upper


def dialog(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if not line_complete(data):
        r = yield from recv(line_complete, limit=8192)
        data += r.data
    facts.saw(data)
    line = first_line(data)
    if not line.startswith(("* OK", "* PREAUTH", "* BYE")):
        return
    facts.identify("imap", 8, "banner")
    if line.startswith("* PREAUTH"):
        facts.extra["preauth"] = True
    rules.match("imap", line, facts, service="imap")
    if line.startswith("* BYE"):
        return
    r = yield from exchange(b"a1 CAPABILITY\r\n", tagged_complete(b"a1"), limit=8192)
    caps = parse_capabilities(r.data)
    if caps is None:
        caps = parse_capabilities(data)
    if caps is not None:
        facts.identify("imap", 10, "banner")
        _record(ctx, facts, caps)
    if facts.extra.get("starttls") and not ctx.tls and ctx.intensity >= 2:
        r = yield from exchange(b"a2 STARTTLS\r\n", tagged_complete(b"a2"), limit=4096)
        if b"a2 OK" in r.data:
            result = yield from starttls()
            if not result.ok:
                return
    yield from exchange(b"a3 LOGOUT\r\n", tagged_complete(b"a3"), limit=2048, timeout=1.0)


def starttls_prelude(ctx: Context, facts: Facts) -> Dialog:
    r = yield from recv(line_complete, limit=8192)
    if not r.data.startswith(b"* OK"):
        return
    r = yield from exchange(b"a2 STARTTLS\r\n", tagged_complete(b"a2"), limit=4096)
    if b"a2 OK" in r.data:
        yield from starttls()


PROTOCOL = ServiceProtocol(
    name="imap", dialog=dialog, server_first=True, recognize=recognize, hints=("imap",),
    tls_hints=("imaps",), starttls=starttls_prelude,
)
