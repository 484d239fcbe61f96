"""RDP: Standard RDP Security accepted, Network Level Authentication (NLA) not required.

From the ``-sV`` facts of the RDP probe (services/rdp.py): ``protocols`` lists the security
protocols the server accepted when offered alone (``rdp`` = Standard RDP Security, ``ssl`` =
TLS, ``hybrid`` = CredSSP/NLA), ``nla_required`` whether only CredSSP is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context
from portscope.model import Finding, Host

LABELS = {"rdp": "Standard RDP Security", "ssl": "TLS", "hybrid": "CredSSP (NLA)"}


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None or not isinstance(svc.extra.get("protocols"), list):
            continue
        accepted = [str(x) for x in svc.extra["protocols"]]
        if not accepted:
            continue
        evidence = "security protocols accepted: " + ", ".join(
            LABELS.get(a, a) for a in accepted)
        if svc.product:
            evidence += f"\nserver: {svc.product}"
        if "rdp" in accepted:
            yield ctx.finding("rdp.standard-security", host, p, entry=ctx.entry(p),
                              evidence=evidence)
        if svc.extra.get("nla_required") is False:
            yield ctx.finding("rdp.nla-not-required", host, p, entry=ctx.entry(p),
                              evidence=evidence)
