"""Anonymous FTP: ``USER anonymous`` accepted (230), and anonymous uploads."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None or svc.extra.get("anonymous_login") is not True:
            continue
        ev = port_evidence(p) + "\nUSER anonymous -> 230 (login accepted)"
        entry = ctx.entry(p)
        yield ctx.finding("ftp.anonymous", host, p, entry=entry, evidence=ev)
        if svc.extra.get("anonymous_writable") is True:
            yield ctx.finding("ftp.anonymous-writable", host, p, entry=entry, evidence=ev)
