"""The security audit: a knowledge base of ports and protocols and small pure checks that
turn a :class:`~portscope.model.ScanRun` into findings.

::

    from portscope.checks import run_checks
    from portscope.checks.config import AuditConfig, load_config
    audited = run_checks(run, load_config())      # findings attached to the hosts

A check is one module with ``check(ctx, host) -> Iterable[Finding | None]`` and one line
in :data:`CHECKS`. Active checks (the SMTP relay test) run in the engine first
(:func:`portscope.engine.relay.run_relay_tests`) and leave their results as service facts,
so :func:`run_checks` stays pure and can run again on a stored run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from portscope.checks import (
    access,
    cleartext,
    compare,
    disclosure,
    dns_recursion,
    exposure,
    ftp_anonymous,
    http_methods,
    malware,
    ntp_monlist,
    policy,
    rdp,
    smb,
    smtp,
    snmp_community,
    ssh,
    tls,
    windows,
)
from portscope.checks.base import AUDIT_SOURCE, CheckFn, Context
from portscope.checks.config import AuditConfig
from portscope.checks.kb import KnowledgeBase, load_kb
from portscope.model import Finding, Host, HostStatus, ScanRun
from portscope.report._common import sorted_findings

CHECKS: dict[str, CheckFn] = {
    "exposure": exposure.check,
    "windows": windows.check,
    "malware": malware.check,
    "cleartext": cleartext.check,
    "disclosure": disclosure.check,
    "tls": tls.check,
    "http": http_methods.check,
    "ftp": ftp_anonymous.check,
    "snmp": snmp_community.check,
    "dns": dns_recursion.check,
    "ntp": ntp_monlist.check,
    "smb": smb.check,
    "rdp": rdp.check,
    "access": access.check,
    "ssh": ssh.check,
    "smtp": smtp.check,
    "policy": policy.check,
    "compare": compare.check,
}
"""Check name -> check function. Finding kinds are ``<check>.<what>`` (``tls.expired``)."""


def audit_host(ctx: Context, host: Host) -> Host:
    """*host* with its audit findings (previous audit findings replaced), worst first."""
    found: dict[str, Finding] = {}
    if host.status is not HostStatus.DOWN:
        for name, fn in CHECKS.items():
            if ctx.config.disabled(name):
                continue
            for f in fn(ctx, host):
                if f is not None:
                    found.setdefault(f.id, f)
    kept = [f for f in host.findings
            if f.extra.get("source") != AUDIT_SOURCE and f.id not in found]
    return replace(host, findings=tuple(sorted_findings([*kept, *found.values()])))


def run_checks(run: ScanRun, config: AuditConfig | None = None, *,
               kb: KnowledgeBase | None = None, now: datetime | None = None) -> ScanRun:
    """*run* with the audit's findings attached to its hosts.

    *kb* defaults to the shipped knowledge base with the configuration's files and
    ``[services]`` overrides; *now* (the time certificates are judged at) to
    ``config.now``, then the run's finish time.
    """
    config = config or AuditConfig()
    if kb is None:
        kb = load_kb(extra=config.kb_files, overrides=config.services)
    when = now or config.now or run.finished or run.started
    ctx = Context(run=run, kb=kb, config=config, now=when)
    hosts = [audit_host(ctx, h) for h in run.hosts]
    meta = dict(run.extra.get("audit") or {})
    meta.update({
        "lang": config.lang,
        "checks": [c for c in CHECKS if not config.disabled(c)],
        "config": list(config.sources),
        "overrides": _overrides_summary(config),
        "policy": getattr(config.policy, "name", None),
        "policy_file": getattr(config.policy, "source", None),
        "judged_at": when.isoformat(),
    })
    return replace(run, hosts=tuple(hosts), extra={**run.extra, "audit": meta})


def _overrides_summary(config: AuditConfig) -> list[dict[str, str]]:
    out = []
    for key, ov in config.services.items():
        out.append({"scope": f"services.{key}", "severity": ov.severity.value,
                    "reason": ov.reason, "source": ov.source})
    for key, ov in config.checks.items():
        out.append({"scope": f"checks.{key}", "severity": ov.severity.value,
                    "reason": ov.reason, "source": ov.source})
    for rule in config.rules:
        scope = ", ".join(f"{k}={v}" for k, v in (("check", rule.check),
                                                   ("service", rule.service),
                                                   ("port", rule.port),
                                                   ("protocol", rule.protocol)) if v)
        if rule.hosts:
            scope += (", " if scope else "") + "hosts=" + ",".join(map(str, rule.hosts))
        out.append({"scope": f"override[{scope}]", "severity": rule.severity.value,
                    "reason": rule.reason, "source": rule.source})
    return out


__all__ = ["CHECKS", "AuditConfig", "Context", "audit_host", "run_checks"]
