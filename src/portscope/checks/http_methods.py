"""Dangerous HTTP methods (PUT, DELETE, TRACE, CONNECT ...) that the server says it allows
or that did not answer 405/501 (facts ``methods``/``risky_methods``)."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context
from portscope.model import Finding, Host, Severity

WRITE_METHODS = frozenset({"PUT", "DELETE", "PATCH", "MOVE", "COPY", "MKCOL", "PROPPATCH",
                           "CONNECT", "LOCK"})


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None:
            continue
        risky = [str(m).upper() for m in svc.extra.get("risky_methods") or []]
        if not risky:
            continue
        write = [m for m in risky if m in WRITE_METHODS]
        allow = svc.extra.get("methods") or []
        evidence = f"risky methods: {', '.join(risky)}"
        if allow:
            evidence += f"\nAllow: {', '.join(str(m) for m in allow)}"
        yield ctx.finding("http.risky-methods", host, p, entry=ctx.entry(p),
                          params={"methods": ", ".join(risky)},
                          parts={"reason_detail": "reason_detail.write" if write
                                 else "reason_detail.trace"},
                          severity=Severity.MEDIUM if write else Severity.LOW,
                          evidence=evidence)
