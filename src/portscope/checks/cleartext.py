"""Cleartext logins: Telnet, FTP without AUTH TLS, POP3/IMAP without (required) STLS/
STARTTLS, SMTP AUTH before TLS, VNC. Needs service detection (a port-number guess is
not enough to say how a server logs users in)."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host, PortResult


def _variant(p: PortResult) -> tuple[str, str, int] | None:
    """(detail key, fix key, confidence) when the port takes a cleartext login."""
    svc = p.service
    if svc is None or not svc.detected or svc.tunnel in ("ssl", "tls"):
        return None
    name = svc.name.lower()
    x = svc.extra
    if name == "telnet":
        return ("detail.telnet", "fix.telnet", 95)
    if name == "ftp":
        if x.get("auth_tls") is False:
            return ("detail.ftp", "fix.ftp", 95)
        if "auth_tls" not in x:
            return ("detail.ftp-unknown", "fix.ftp", 60)
        return None
    if name in ("pop3", "imap"):
        if x.get("cleartext_auth") is True or x.get("starttls") is False:
            return (f"detail.{name}", f"fix.{name}", 95)
        return None
    if name in ("smtp", "submission") and x.get("auth_before_tls") is True:
        return ("detail.smtp", "fix.smtp", 95)
    if name == "vnc":
        types = [str(t).lower() for t in x.get("security_types") or []]
        if types and not any("tls" in t or "vencrypt" in t for t in types):
            return ("detail.vnc", "fix.vnc", 80)
    return None


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        v = _variant(p)
        if v is None:
            continue
        detail, fix, confidence = v
        yield ctx.finding("cleartext.login", host, p, entry=ctx.entry(p),
                          parts={"detail": detail, "fix": fix}, confidence=confidence,
                          evidence=port_evidence(p))
