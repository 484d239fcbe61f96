"""FTP (RFC 959, RFC 2389 FEAT, RFC 4217 AUTH TLS): greeting, features, anonymous login
and the certificate behind ``AUTH TLS``."""

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
    reconnect,
    recv,
    starttls,
)
from portscope.services.textproto import code_reply_complete, parse_code_reply

FTP_WORDS = (b"FTP", b"FileZilla", b"ProFTPD", b"vsFTPd", b"Pure-FTPd", b"Serv-U", b"ftp")
SMTP_WORDS = (b"SMTP", b"Postfix", b"Exim", b"Sendmail", b"mail", b"Mail", b"MAIL")


def recognize(data: bytes) -> int:
    if data[:4] not in (b"220 ", b"220-", b"421 ", b"421-", b"120 ", b"120-"):
        return 0
    head = data[:1024]
    if any(w in head for w in FTP_WORDS):
        return 9
    if any(w in head for w in SMTP_WORDS):
        return 2
    return 5  # a bare 220 greeting: FTP or SMTP, the dialog tells


def greeting(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if not code_reply_complete(data):
        r = yield from recv(code_reply_complete, limit=8192)
        data += r.data
    facts.saw(data)
    code, lines = parse_code_reply(data)
    if code is None:
        return
    text = "\n".join(lines)
    facts.extra["_code"] = code
    facts.extra["_greeting"] = text
    if rules.match("ftp", text, facts, service="ftp") is not None:
        facts.identify("ftp", 10, "banner")


def dialog(ctx: Context, facts: Facts) -> Dialog:
    yield from greeting(ctx, facts)
    code = facts.extra.pop("_code", None)
    facts.extra.pop("_greeting", None)
    if code not in (220, 120):
        if code == 421 and facts.name == "ftp":
            facts.extra["refused"] = True
        return
    r = yield from exchange(b"FEAT\r\n", code_reply_complete, limit=8192)
    fcode, flines = parse_code_reply(r.data)
    if (fcode is not None and fcode >= 400 and b" 5.5." in r.data[:16]) or fcode == 250:
        return  # an SMTP server answering (enhanced status code): not ours
    if fcode == 211:
        features = bounded_list(clean(x, 100) for x in flines[1:-1] if x.strip())
        facts.extra["features"] = features
        facts.extra["auth_tls"] = any(f.upper().startswith("AUTH") and "TLS" in f.upper()
                                      for f in features)
        facts.identify("ftp", max(facts.confidence, 9), "banner")
    elif fcode in (500, 502, 504) and facts.name is None:
        facts.identify("ftp", 6, "banner")  # FEAT not implemented (old servers)
    if facts.name is None:
        return
    if ctx.auth_checks:
        r = yield from exchange(b"USER anonymous\r\n", code_reply_complete, limit=4096)
        ucode, _ = parse_code_reply(r.data)
        if ucode == 230:
            facts.extra["anonymous_login"] = True
        elif ucode == 331:
            r = yield from exchange(b"PASS anonymous@example.com\r\n", code_reply_complete,
                                    limit=4096, timeout=ctx.timeout + 3)
            pcode, _ = parse_code_reply(r.data)
            if pcode == 230:
                facts.extra["anonymous_login"] = True
            elif pcode is not None and pcode >= 500:
                facts.extra["anonymous_login"] = False
        elif ucode is not None and ucode >= 500:
            facts.extra["anonymous_login"] = False
    yield from exchange(b"QUIT\r\n", code_reply_complete, limit=1024, timeout=1.0)
    if facts.extra.get("auth_tls") and not ctx.tls and ctx.intensity >= 2:
        if not (yield from reconnect()):
            return
        yield from _auth_tls(ctx, facts)


def _auth_tls(ctx: Context, facts: Facts) -> Dialog:
    r = yield from recv(code_reply_complete, limit=8192)
    code, _ = parse_code_reply(r.data)
    if code != 220:
        return
    r = yield from exchange(b"AUTH TLS\r\n", code_reply_complete, limit=4096)
    code, _ = parse_code_reply(r.data)
    if code == 234:
        yield from starttls()


def starttls_prelude(ctx: Context, facts: Facts) -> Dialog:
    yield from _auth_tls(ctx, facts)


PROTOCOL = ServiceProtocol(
    name="ftp", dialog=dialog, server_first=True, recognize=recognize, hints=("ftp",),
    tls_hints=("ftps",), starttls=starttls_prelude,
)
