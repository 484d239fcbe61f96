"""Windows/NetBIOS/SMB exposure: 135, 137-139 and 445 (the seed's "close 135, 137-139,
445"), rated from the knowledge base with the advice on what closing them affects."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        entry = ctx.entry(p)
        if entry is None or entry.category != "windows":
            continue
        detected = p.service is not None and p.service.detected
        yield ctx.finding("windows.port", host, p, entry=entry, evidence=port_evidence(p),
                          confidence=80 if detected else 50)
