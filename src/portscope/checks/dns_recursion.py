"""Open DNS recursion: a resolver answering recursive queries for outside names."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        if p.service is not None and p.service.extra.get("recursion") is True:
            yield ctx.finding("dns.open-recursion", host, p, entry=ctx.entry(p),
                              evidence=port_evidence(p) + "\nrecursive query for an outside "
                              "name answered (RA set)")
