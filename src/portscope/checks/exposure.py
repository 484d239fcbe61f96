"""Exposed services: every open port rated by the knowledge base (the ISP report's
危険度 column). Windows and malware ports are left to their own checks."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host

OWN_CHECKS = frozenset({"windows", "malware"})


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        entry = ctx.entry(p)
        if entry is None:
            yield ctx.finding("exposure.unknown", host, p, evidence=port_evidence(p))
            continue
        if entry.category in OWN_CHECKS:
            continue
        detected = p.service is not None and p.service.detected
        yield ctx.finding("exposure.service", host, p, entry=entry,
                          evidence=port_evidence(p), confidence=80 if detected else 50)
