"""SNMP answering a default community (public, private ...)."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context
from portscope.model import Finding, Host

DEFAULT_COMMUNITIES = frozenset({"public", "private", "community", "cisco", "manager",
                                 "admin", "default", "snmp", "monitor", ""})


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None:
            continue
        community = svc.extra.get("community")
        if not isinstance(community, str) or community.lower() not in DEFAULT_COMMUNITIES:
            continue
        descr = str(svc.extra.get("sys_descr") or "")
        lines = [f"community {community!r} accepted"]
        for key in ("sys_descr", "sys_name", "sys_object_id", "versions"):
            if svc.extra.get(key):
                v = svc.extra[key]
                lines.append(f"{key}: {', '.join(v) if isinstance(v, list) else v}")
        yield ctx.finding("snmp.default-community", host, p, entry=ctx.entry(p),
                          params={"community": community,
                                  "sys_descr": descr[:120] or "sysDescr"},
                          evidence="\n".join(lines))
