"""Services reachable without authentication: databases and APIs whose ``auth_required``
fact is false (Redis, MongoDB, Elasticsearch, Memcached, PostgreSQL trust, Docker, X11),
VNC offering security type None, LDAP anonymous reads."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context, port_evidence
from portscope.model import Finding, Host


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None:
            continue
        x = svc.extra
        entry = ctx.entry(p)
        types = [str(t) for t in x.get("security_types") or []]
        if x.get("auth_required") is False or (svc.name == "vnc" and "None" in types):
            how = "security type None offered" if "None" in types else \
                "answered without authentication (auth_required = false)"
            yield ctx.finding("access.no-auth", host, p, entry=entry,
                              evidence=port_evidence(p) + f"\n{how}")
        if x.get("anonymous_bind") is True:
            contexts = x.get("naming_contexts") or []
            yield ctx.finding("ldap.anonymous-bind", host, p, entry=entry,
                              evidence=port_evidence(p) + "\nrootDSE read without bind" +
                              (f"\nnamingContexts: {', '.join(map(str, contexts))}"
                               if contexts else ""))
