"""SSH servers still offering protocol version 1."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host

SSH1 = ("1.99", "1.5", "1.3", "1.0")


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None or svc.name != "ssh":
            continue
        version = str(svc.extra.get("protocol_version") or "")
        if version in SSH1:
            yield ctx.finding("ssh.protocol-v1", host, p, entry=ctx.entry(p),
                              params={"protocol_version": f"SSH-{version}"},
                              evidence=port_evidence(p))
