"""What every check uses: the :class:`Context` (run, knowledge base, configuration, the
time) and :meth:`Context.finding`, which turns a finding kind from ``checks.yaml`` plus the
facts of one port into a :class:`~portscope.model.Finding` in both languages, with its
level, the written reason for it and the user's overrides applied.

A check is a function ``check(ctx, host) -> Iterable[Finding]``; pure (no I/O, no clock:
``ctx.now`` is the time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portscope.checks.config import AuditConfig
from portscope.checks.kb import LANGS, CheckKind, KBEntry, KnowledgeBase
from portscope.model import Finding, Host, PortResult, PortState, ScanRun, Severity

AUDIT_SOURCE = "portscope-audit"
"""``Finding.extra["source"]`` of the audit's findings (re-running replaces them)."""

MAX_EVIDENCE = 16_000

TEXT_FIELDS = ("title", "risk", "severity_reason", "remediation", "function", "name",
               "confidence_note")


def fingerprint(kind: str, address: str, port: PortResult | None, discriminator: str = "") -> str:
    """Stable id of a finding: the same problem on the same port has the same id in every
    run (the store follows its lifecycle with it)."""
    where = f"{port.protocol.value}/{port.port}" if port is not None else "host"
    raw = "\x1f".join((kind, address, where, discriminator))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def where_label(port: PortResult | None) -> str:
    return f"{port.port}/{port.protocol.value}" if port is not None else "-"


def clip(text: str, limit: int = MAX_EVIDENCE) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... truncated]"


def max_severity(*levels: Severity) -> Severity:
    return max(levels, key=lambda s: s.rank)


@dataclass(frozen=True)
class Context:
    run: ScanRun
    kb: KnowledgeBase
    config: AuditConfig
    now: datetime

    @property
    def lang(self) -> str:
        return self.config.lang

    def open_ports(self, host: Host) -> list[PortResult]:
        return [p for p in host.ports if p.state is PortState.OPEN]

    def entry(self, port: PortResult) -> KBEntry | None:
        return self.kb.lookup_port(port)

    def finding(
        self,
        kind: str,
        host: Host,
        port: PortResult | None = None,
        *,
        entry: KBEntry | None = None,
        params: Mapping[str, Any] | None = None,
        parts: Mapping[str, str] | None = None,
        severity: Severity | None = None,
        evidence: str = "",
        confidence: int | None = None,
        confidence_note: str | None = None,
        discriminator: str = "",
        title_key: str = "title",
        extra: Mapping[str, Any] | None = None,
        references: Iterable[str] = (),
    ) -> Finding | None:
        """One finding of *kind* (None when the user disabled the kind).

        *params* fill the templates; *parts* name sub-templates of the kind that are filled
        first and passed on as params (``{"detail": "detail.ftp"}``). Risk, severity reason
        and remediation come from the kind when it has them, else from *entry* (the
        knowledge base). *severity* replaces a fixed default for variants of a kind.
        """
        if self.config.disabled(kind):
            return None
        ck = self.kb.check(kind)
        svc = port.service if port is not None else None
        base_params: dict[str, Any] = {
            "where": where_label(port),
            "port": port.port if port is not None else "",
            "proto": port.protocol.value if port is not None else "",
            "service": svc.name if svc is not None else "unknown",
            "address": host.address,
        }
        base_params.update(params or {})

        level, default, kb_override = self._level(ck, entry, severity)
        services = [s for s in (entry.id if entry else None, svc.name if svc else None) if s]
        user = self.config.override_for(
            kind=kind, address=host.address, port=port.port if port else None,
            protocol=port.protocol.value if port else None, services=services)

        i18n: dict[str, dict[str, str]] = {}
        for lang in LANGS:
            p = dict(base_params)
            if entry is not None:
                p.setdefault("name", entry.name(lang))
            else:
                p.setdefault("name", base_params["service"])
            for name, key in (parts or {}).items():
                p[name] = ck.text(lang, key, p)
            t: dict[str, str] = {"title": ck.text(lang, title_key, p)}
            for field_name in ("risk", "severity_reason", "remediation"):
                if ck.has(field_name):
                    t[field_name] = ck.text(lang, field_name, p)
                elif entry is not None:
                    t[field_name] = getattr(entry, field_name)(lang)
                else:
                    t[field_name] = ""
            if kb_override and entry is not None:
                t["severity_reason"] = entry.severity_reason(lang)
            if user is not None:
                t["severity_reason"] = user.explain(level, lang)
            if ck.has("advice"):
                t["remediation_short"] = t["remediation"]
                t["remediation"] = (t["remediation"] + " " + ck.text(lang, "advice", p)).strip()
            t["function"] = entry.function(lang) if entry is not None else ""
            t["name"] = entry.name(lang) if entry is not None else ""
            if confidence_note:
                t["confidence_note"] = ck.text(lang, confidence_note, p)
            i18n[lang] = t

        final = user.severity if user is not None else level
        refs = list(dict.fromkeys([*ck.references, *(entry.references if entry else ()),
                                   *references]))
        main = i18n.get(self.lang, i18n["en"])
        ext: dict[str, Any] = {
            "source": AUDIT_SOURCE,
            "category": ck.category,
            "kb_id": entry.id if entry is not None else None,
            "default_severity": (default if user is None else level).value,
            "overridden": user is not None or kb_override,
            "i18n": i18n,
        }
        if entry is not None and entry.actions:
            ext["actions"] = list(entry.actions)
        if extra:
            ext.update(extra)
        return Finding(
            id=fingerprint(kind, host.address, port, discriminator),
            check=kind,
            severity=final,
            severity_reason=main["severity_reason"],
            title=main["title"],
            port=port.port if port is not None else None,
            protocol=port.protocol if port is not None else None,
            risk=main["risk"],
            evidence=clip(evidence),
            remediation=main["remediation"],
            references=tuple(refs),
            confidence=ck.confidence if confidence is None else confidence,
            extra=ext,
        )

    def _level(self, ck: CheckKind, entry: KBEntry | None,
               severity: Severity | None) -> tuple[Severity, Severity, bool]:
        """(level, portscope's default level, whether a [services] override set it)."""
        if ck.severity in ("from-kb", "from-kb-min-medium"):
            if entry is None:
                level = severity or Severity.MEDIUM
                return level, level, False
            level = entry.severity
            default = entry.default_severity or entry.severity
            if ck.severity == "from-kb-min-medium":
                level = max_severity(level, Severity.MEDIUM)
                default = max_severity(default, Severity.MEDIUM)
                return level, default, False
            return level, default, entry.overridden
        level = severity or ck.fixed_severity or Severity.INFO
        return level, level, False


CheckFn = Callable[[Context, Host], Iterable[Finding | None]]


def port_evidence(p: PortResult) -> str:
    """``23/tcp open (syn-ack); telnet (detected by banner): BusyBox telnetd`` and the
    banner's first lines."""
    svc = p.service
    line = f"{p.port}/{p.protocol.value} {p.state.value}"
    if p.reason:
        line += f" ({p.reason})"
    if svc is not None:
        how = {"port-table": "port number only", "banner": "detected by its banner",
               "probe": "detected by a probe"}.get(svc.method, svc.method)
        line += f"; {svc.name} ({how})"
        soft = " ".join(x for x in (svc.product, svc.version) if x)
        if soft:
            line += f": {soft}"
        if svc.extrainfo:
            line += f" ({svc.extrainfo})"
    if svc is not None and svc.banner:
        line += "\n" + banner_evidence(svc.banner)
    return line


def banner_evidence(banner: str) -> str:
    """The banner's first lines, or for a binary reply (LDAP, SMB, MySQL greetings ...)
    its length and first bytes in hex instead of control characters."""
    text = banner[:600]
    printable = sum(1 for c in text if c.isprintable() or c in "\r\n\t")
    if printable >= 0.85 * len(text):
        return "\n".join(banner.splitlines()[:6])[:600]
    head = " ".join(f"{ord(c) & 0xFF:02x}" for c in banner[:32])
    more = " ..." if len(banner) > 32 else ""
    return f"binary reply, {len(banner)} bytes: {head}{more}"


__all__ = [
    "AUDIT_SOURCE",
    "CheckFn",
    "Context",
    "banner_evidence",
    "clip",
    "fingerprint",
    "max_severity",
    "port_evidence",
    "where_label",
]
