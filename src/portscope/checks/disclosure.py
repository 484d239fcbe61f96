"""Version disclosure: a banner, Server header or version.bind answer that names the
exact software version (seed advice: reduce what open ports tell)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from portscope.checks.base import Context
from portscope.model import Finding, Host, PortResult

FIX_KEYS = {"http": "fix.http", "https": "fix.http", "http-proxy": "fix.http",
            "ssh": "fix.ssh", "smtp": "fix.smtp", "submission": "fix.smtp", "ftp": "fix.ftp",
            "domain": "fix.domain"}


# a range or wildcard the scanner guessed ("3.X - 4.X", "2.6.X"): nothing was disclosed
GUESSED = re.compile(r"(?:^|[.\s])[xX](?:$|[.\s])|\s-\s")


def _disclosed(p: PortResult) -> tuple[str, str] | None:
    """(software, evidence) when the answer names a version."""
    svc = p.service
    if svc is None or not svc.detected:
        return None
    x = svc.extra
    if svc.name == "domain" and isinstance(x.get("version_bind"), str) and x["version_bind"]:
        return (x["version_bind"], f"version.bind CH TXT: {x['version_bind']}")
    if not svc.version or GUESSED.search(svc.version):
        return None
    software = " ".join(s for s in (svc.product, svc.version) if s)
    server = x.get("server")
    if isinstance(server, str) and server:
        evidence = f"Server: {server}"
        if isinstance(x.get("powered_by"), str):
            evidence += f"\nX-Powered-By: {x['powered_by']}"
    elif svc.banner:
        evidence = svc.banner.splitlines()[0][:300] if svc.banner.splitlines() else svc.banner
    else:
        evidence = software
    return software, evidence


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        found = _disclosed(p)
        if found is None:
            continue
        software, evidence = found
        assert p.service is not None
        fix = FIX_KEYS.get(p.service.name, "fix.generic")
        entry = ctx.entry(p)
        yield ctx.finding("disclosure.version", host, p, entry=entry,
                          params={"software": software}, parts={"fix": fix},
                          evidence=evidence, extra={"software": software})
