"""NTP answering the mode 7 monlist query (CVE-2013-5211 amplification)."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        if p.service is not None and p.service.extra.get("monlist") is True:
            yield ctx.finding("ntp.monlist", host, p, entry=ctx.entry(p),
                              evidence=port_evidence(p) + "\nMON_GETLIST answered")
