"""Alerts of ``portscope watch``: pure logic, no I/O.

Triggers (named like Shodan Monitor's):

* ``new_open_port``: a port inside both runs' scope became open (diff ``port-opened``);
* ``new_finding``: a finding at or above the severity threshold (default high) appeared;
* ``cert_expiring``: an open port's TLS certificate expires within N days (default 30),
  or has expired; once per certificate;
* ``service_changed``: a detected service's product/version changed;
* ``cert_changed``: a TLS certificate was replaced.

Every alert has a ``key`` (trigger, address, port and what identifies the event). The
watcher sends an alert once per key; the key is *resolved* when its condition is gone
(the port closed again, the finding disappeared), so a port that reopens alerts again
(CyHy's reopen). Mutes silence alerts by host, host:port, port, check or trigger, with
an optional expiry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portscope.diff import RunDiff
from portscope.errors import UsageError
from portscope.model import PortState, ScanRun, Severity, format_time, parse_time

TRIGGERS = ("new_open_port", "new_finding", "cert_expiring", "service_changed",
            "cert_changed")


@dataclass(frozen=True, slots=True)
class Alert:
    trigger: str
    address: str
    title: str
    protocol: str | None = None
    port: int | None = None
    check: str | None = None
    severity: str = "medium"
    detail: str = ""
    ident: str = ""  # what makes the event unique beyond trigger/address/port
    before: Any = None
    after: Any = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        where = f"{self.port}/{self.protocol}" if self.port is not None else "-"
        return f"{self.trigger}|{self.address}|{where}|{self.ident}"

    def to_dict(self, *, watch: str = "", run_id: str = "", now: datetime | None = None
                ) -> dict[str, Any]:
        return {"source": "portscope", "watch": watch, "run": run_id,
                "time": format_time(now) if now else None, "key": self.key,
                "trigger": self.trigger, "severity": self.severity, "title": self.title,
                "address": self.address, "protocol": self.protocol, "port": self.port,
                "check": self.check, "detail": self.detail, "before": self.before,
                "after": self.after, **({"data": self.data} if self.data else {})}

    def text(self) -> str:
        where = f"{self.address}:{self.port}/{self.protocol}" if self.port is not None \
            else self.address
        return f"[{self.severity.upper()}] {self.title} on {where}" + \
            (f": {self.detail}" if self.detail else "")


def _sev(name: str) -> Severity:
    try:
        return Severity(name)
    except ValueError:
        raise UsageError(f"unknown severity {name!r} (critical, high, medium, low, info)"
                         ) from None


def alerts_from_diff(diff: RunDiff | None, run: ScanRun, *, now: datetime,
                     min_severity: str = "high", cert_days: int = 30) -> list[Alert]:
    """The alerts of one watch cycle: *diff* is baseline -> *run* (None on the first run:
    only state alerts such as expiring certificates then)."""
    out: list[Alert] = []
    threshold = _sev(min_severity).rank
    if diff is not None:
        for c in diff.changes:
            if c.kind == "port-opened":
                out.append(Alert("new_open_port", c.address, "new open port", c.protocol,
                                 c.port, severity="high",
                                 detail=f"{c.before} -> {c.after}" + (f" {c.detail}"
                                                                      if c.detail else ""),
                                 before=c.before, after=c.after))
            elif c.kind == "service-changed":
                out.append(Alert("service_changed", c.address, "service version changed",
                                 c.protocol, c.port, severity="medium",
                                 detail=f"{c.before} -> {c.after}", ident=str(c.after),
                                 before=c.before, after=c.after))
            elif c.kind == "cert-changed":
                out.append(Alert("cert_changed", c.address, "TLS certificate changed",
                                 c.protocol, c.port, severity="medium", detail=c.detail,
                                 ident=str(c.after), before=c.before, after=c.after))
        before = {(h.address, f.id) for h in diff.a.hosts for f in h.findings}
        audited_before = bool(before) or any(k in diff.a.extra for k in ("checks", "audit",
                                                                         "audited"))
        for h in run.hosts if audited_before else ():
            for f in h.findings:
                if f.severity.rank < threshold or (h.address, f.id) in before:
                    continue
                out.append(Alert("new_finding", h.address, f.title,
                                 f.protocol.value if f.protocol else None, f.port,
                                 check=f.check, severity=f.severity.value,
                                 detail=f.severity_reason, ident=f.id,
                                 data={"finding": f.to_dict()}))
    for h in run.hosts:
        for p in h.ports:
            tls = p.service.tls if p.service is not None else None
            if p.state is not PortState.OPEN or not tls:
                continue
            left = _days_left(tls, now)
            if left is None or left > cert_days:
                continue
            expired = left < 0
            out.append(Alert("cert_expiring", h.address,
                             "TLS certificate expired" if expired
                             else "TLS certificate expires soon",
                             p.protocol.value, p.port,
                             severity="high" if left < 7 else "medium",
                             detail=f"not after {tls.get('not_after')} ({left} days left)",
                             ident=str(tls.get("sha256") or tls.get("not_after")),
                             after=tls.get("not_after")))
    return out


def _days_left(tls: Any, now: datetime) -> int | None:
    try:
        t = parse_time(tls.get("not_after"), "tls.not_after")
    except Exception:
        t = None
    if t is not None:
        return int((t - now).total_seconds() // 86400)
    days = tls.get("days_left")
    return days if isinstance(days, int) and not isinstance(days, bool) else None


def still_active(trigger: str, address: str, protocol: str | None, port: int | None,
                 ident: str, run: ScanRun, scanned: Any) -> bool | None:
    """Whether an alert sent before still holds in *run*: True/False, or None when *run*
    did not look (port outside its scope): then the alert is left as it is."""
    host = run.host(address)
    if trigger == "new_open_port":
        if port is None or protocol is None:
            return None
        if not scanned(address, protocol, port):
            return None
        p = host.port(port, protocol) if host else None
        return p is not None and p.state is PortState.OPEN
    if trigger == "new_finding":
        if host is None:
            return None
        return any(f.id == ident for f in host.findings)
    if trigger == "cert_expiring":
        if host is None or port is None or protocol is None:
            return None
        p = host.port(port, protocol)
        tls = p.service.tls if p is not None and p.service is not None else None
        return bool(tls) and str((tls or {}).get("sha256") or (tls or {}).get("not_after")) \
            == ident
    return None  # service_changed, cert_changed: one-off events


# --------------------------------------------------------------------------------------
# mutes


def normalize_scope(text: str) -> str:
    """Canonical mute scope: ``ADDRESS``, ``ADDRESS:PORT[/PROTO]`` (IPv6 in brackets),
    ``port:N[/PROTO]``, ``check:ID``, ``trigger:NAME``."""
    s = text.strip()
    low = s.lower()
    for prefix in ("check:", "trigger:"):
        if low.startswith(prefix):
            value = s[len(prefix):].strip()
            if not value:
                raise UsageError(f"empty mute scope {text!r}")
            if prefix == "trigger:" and value not in TRIGGERS:
                raise UsageError(f"unknown trigger {value!r} (triggers: {', '.join(TRIGGERS)})")
            return prefix + value
    if low.startswith("port:"):
        port, proto = _port_proto(s[5:], text)
        return f"port:{port}/{proto}"
    try:  # a bare address
        return "host:" + str(ipaddress.ip_address(s.strip("[]")))
    except ValueError:
        pass
    if s.startswith("["):
        addr, _, rest = s[1:].partition("]")
        rest = rest.lstrip(":")
    else:
        addr, _, rest = s.rpartition(":")
    try:
        address = str(ipaddress.ip_address(addr))
    except ValueError:
        raise UsageError(f"bad mute scope {text!r}: use ADDRESS, ADDRESS:PORT, port:N, "
                         f"check:ID or trigger:NAME") from None
    port, proto = _port_proto(rest, text)
    return f"host:{address}:{port}/{proto}"


def _port_proto(text: str, whole: str) -> tuple[int, str]:
    port_s, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    try:
        port = int(port_s)
    except ValueError:
        raise UsageError(f"bad port in mute scope {whole!r}") from None
    if not 0 <= port <= 65535 or proto not in ("tcp", "udp"):
        raise UsageError(f"bad port in mute scope {whole!r}")
    return port, proto


def muted_by(alert: Alert, scopes: list[str]) -> str | None:
    """The first of *scopes* (normalised) that silences *alert*, or None."""
    wanted = {f"trigger:{alert.trigger}", f"host:{alert.address}"}
    if alert.check:
        wanted.add(f"check:{alert.check}")
    if alert.port is not None:
        wanted.add(f"port:{alert.port}/{alert.protocol}")
        wanted.add(f"host:{alert.address}:{alert.port}/{alert.protocol}")
    return next((s for s in scopes if s in wanted), None)
