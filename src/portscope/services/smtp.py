"""SMTP / submission (RFC 5321, RFC 3207 STARTTLS): greeting, EHLO capabilities, AUTH
mechanisms, VRFY/EXPN, and the certificate behind STARTTLS. Never sends MAIL or DATA."""

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
    recv,
    starttls,
)
from portscope.services.ftp import FTP_WORDS, SMTP_WORDS
from portscope.services.textproto import code_reply_complete, parse_code_reply

HELO_NAME = b"portscope.invalid"


def recognize(data: bytes) -> int:
    if data[:4] not in (b"220 ", b"220-", b"421 ", b"421-", b"554 ", b"554-"):
        return 0
    head = data[:1024]
    if any(w in head for w in SMTP_WORDS):
        return 9
    if any(w in head for w in FTP_WORDS):
        return 2
    return 5


def _greeting(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if not code_reply_complete(data):
        r = yield from recv(code_reply_complete, limit=8192)
        data += r.data
    facts.saw(data)
    code, lines = parse_code_reply(data)
    facts.extra["_code"] = code
    if code is None:
        return
    text = "\n".join(lines)
    if rules.match("smtp", text, facts, service="smtp") is not None:
        facts.identify("smtp", 10, "banner")
    elif any(w in data[:1024] for w in SMTP_WORDS):
        facts.identify("smtp", 8, "banner")


def _ehlo(ctx: Context, facts: Facts, *, record: bool) -> Dialog:
    r = yield from exchange(b"EHLO " + HELO_NAME + b"\r\n", code_reply_complete, limit=8192)
    code, lines = parse_code_reply(r.data)
    facts.extra["_ehlo_code"] = code
    if code != 250:
        return
    facts.identify("smtp", max(facts.confidence, 9), facts.method)
    keywords = bounded_list(clean(x, 200) for x in lines[1:])
    if not record:
        facts.extra["_ehlo_tls"] = keywords
        return
    facts.extra["ehlo"] = keywords
    upper = [k.upper() for k in keywords]
    facts.extra["starttls"] = "STARTTLS" in upper
    mechs: list[str] = []
    for k in upper:
        if k.startswith("AUTH ") or k.startswith("AUTH="):
            mechs += k[5:].split()
    if mechs:
        facts.extra["auth_mechanisms"] = bounded_list(mechs)
    if not ctx.tls:
        facts.extra["auth_before_tls"] = bool(mechs)


def _command_enabled(code: int | None, data: bytes) -> bool | None:
    if code is None:
        return None
    if 200 <= code < 300:
        return True
    if code in (500, 502, 504) or b"disabled" in data.lower():
        return False
    if code in (550, 551, 553):
        return True  # it looked the address up
    return None


def dialog(ctx: Context, facts: Facts) -> Dialog:
    yield from _greeting(ctx, facts)
    code = facts.extra.pop("_code", None)
    if code != 220:
        if code in (421, 554) and facts.name == "smtp":
            facts.extra["refused"] = True
        return
    yield from _ehlo(ctx, facts, record=True)
    ecode = facts.extra.pop("_ehlo_code", None)
    if ecode != 250:
        if ecode in (500, 502, 530) or ecode is None:
            r = yield from exchange(b"HELO " + HELO_NAME + b"\r\n", code_reply_complete,
                                    limit=4096)
            hcode, _ = parse_code_reply(r.data)
            if hcode == 250:
                facts.identify("smtp", max(facts.confidence, 8), facts.method)
        if facts.name != "smtp":
            return
    if ctx.intensity >= 5:
        r = yield from exchange(b"VRFY postmaster\r\n", code_reply_complete, limit=4096)
        enabled = _command_enabled(parse_code_reply(r.data)[0], r.data)
        if enabled is not None:
            facts.extra["vrfy"] = enabled
        r = yield from exchange(b"EXPN postmaster\r\n", code_reply_complete, limit=4096)
        enabled = _command_enabled(parse_code_reply(r.data)[0], r.data)
        if enabled is not None:
            facts.extra["expn"] = enabled
    if facts.extra.get("starttls") and not ctx.tls and ctx.intensity >= 2:
        r = yield from exchange(b"STARTTLS\r\n", code_reply_complete, limit=4096)
        if parse_code_reply(r.data)[0] == 220:
            result = yield from starttls()
            if result.ok:
                yield from _ehlo(ctx, facts, record=False)
                after = facts.extra.pop("_ehlo_tls", None)
                facts.extra.pop("_ehlo_code", None)
                if after:
                    mechs: list[str] = []
                    for k in (a.upper() for a in after):
                        if k.startswith("AUTH ") or k.startswith("AUTH="):
                            mechs += k[5:].split()
                    if mechs and "auth_mechanisms" not in facts.extra:
                        facts.extra["auth_mechanisms"] = bounded_list(mechs)
    yield from exchange(b"QUIT\r\n", code_reply_complete, limit=1024, timeout=1.0)


def starttls_prelude(ctx: Context, facts: Facts) -> Dialog:
    r = yield from recv(code_reply_complete, limit=8192)
    if parse_code_reply(r.data)[0] != 220:
        return
    r = yield from exchange(b"EHLO " + HELO_NAME + b"\r\n", code_reply_complete, limit=8192)
    if parse_code_reply(r.data)[0] != 250:
        return
    r = yield from exchange(b"STARTTLS\r\n", code_reply_complete, limit=4096)
    if parse_code_reply(r.data)[0] == 220:
        yield from starttls()


PROTOCOL = ServiceProtocol(
    name="smtp", dialog=dialog, server_first=True, recognize=recognize,
    hints=("smtp", "submission", "smtp-alt"), tls_hints=("smtps", "submissions"),
    starttls=starttls_prelude,
)
