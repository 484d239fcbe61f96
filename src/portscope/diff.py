"""What changed between two runs: pure logic over two :class:`ScanRun` (no I/O).

Hosts are matched by address and ports by (protocol, port), as ndiff does. The changes:

* ``host-up`` / ``host-down``: a host's status changed, or a host inside the other
  run's target scope was not found there;
* ``port-opened`` / ``port-closed``: a port became open / stopped being open;
  ``port-state``: another state change (``closed`` -> ``filtered``);
* ``service-changed``: name, product, version or extra info differ (only when both runs
  *detected* the service: a port-number guess is not compared with a detection);
* ``cert-changed``: the TLS certificate fingerprint (``tls.sha256``) differs;
* ``finding-new`` / ``finding-resolved``: by finding id, when both runs were audited.

Scope (CyHy's rule): a port counts only when it lies inside *both* runs' scopes, the
ports scanned (``ports_spec``) on the targets scanned (``targets``); a port open in one
run and outside the other's scope is listed under ``not_compared``, never as closed or
opened. A run with an unknown port scope (masscan files list open ports only) covers
just the ports it lists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from portscope.errors import TargetSpecError
from portscope.model import (
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    ScanRun,
    Service,
    address_key,
    expand_host,
    format_time,
    iter_port_list,
)

KINDS = ("host-up", "host-down", "port-opened", "port-closed", "port-state",
         "service-changed", "cert-changed", "finding-new", "finding-resolved")
_OPENISH = frozenset({PortState.OPEN})


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    address: str
    protocol: str | None = None
    port: int | None = None
    before: Any = None
    after: Any = None
    detail: str = ""

    @property
    def where(self) -> str:
        if self.port is None:
            return self.address
        return f"{self.address} {self.port}/{self.protocol}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "address": self.address, "protocol": self.protocol,
                "port": self.port, "before": self.before, "after": self.after,
                "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RunDiff:
    a: ScanRun
    b: ScanRun
    changes: tuple[Change, ...]
    not_compared: tuple[Change, ...] = field(default=())

    @property
    def different(self) -> bool:
        return bool(self.changes)

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "a": _run_summary(self.a), "b": _run_summary(self.b),
            "different": self.different,
            "counts": {k: self.count(k) for k in KINDS if self.count(k)},
            "changes": [c.to_dict() for c in self.changes],
            "not_compared": [c.to_dict() for c in self.not_compared],
        }


def _run_summary(run: ScanRun) -> dict[str, Any]:
    return {"id": run.id, "started": format_time(run.started), "command": run.command,
            "ports_spec": run.ports_spec, "targets": list(run.targets),
            "complete": run.complete}


# --------------------------------------------------------------------------------------
# scope


class Scope:
    """Which (address, protocol, port) a run covered."""

    def __init__(self, run: ScanRun, hosts: Mapping[str, Host]) -> None:
        self.hosts = hosts
        self.ports: dict[str, set[int]] | None = _parse_spec(run.ports_spec)
        self._blocks = _target_blocks(run.targets)

    def has_host(self, address: str) -> bool:
        if address in self.hosts:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(b.version == ip.version and b.contains_int(int(ip)) for b in self._blocks)

    def has_port(self, address: str, protocol: str, port: int) -> bool:
        host = self.hosts.get(address)
        if host is not None and host.port(port, protocol) is not None:
            return True
        if self.ports is None:
            return False  # unknown scope: only what the run lists
        if host is not None and host.status is not HostStatus.UP and not host.ports:
            return False  # a host that was down had no port scanned
        return port in self.ports.get(protocol, set()) and self.has_host(address)


def _parse_spec(spec: str) -> dict[str, set[int]] | None:
    """``T:1-1024,U:53`` -> {"tcp": {...}, "udp": {...}}; None when unknown/empty."""
    if not spec.strip():
        return None
    out: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    proto = "tcp"
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part[:2].upper() in ("T:", "U:"):
            proto = "tcp" if part[0].upper() == "T" else "udp"
            part = part[2:]
        try:
            out[proto].update(iter_port_list(part))
        except ValueError:
            return None
    return out


def _target_blocks(specs: Iterable[str]) -> list[Any]:
    from portscope.targets.hosts import parse_one

    def no_dns(name: str, family: int) -> list[str]:
        raise TargetSpecError("names are not resolved for a diff")

    blocks: list[Any] = []
    for spec in specs:
        try:
            blocks.extend(parse_one(spec, resolver=no_dns)[0])
        except Exception:
            continue
    return blocks


# --------------------------------------------------------------------------------------
# comparing


def _svc_text(s: Service | None) -> str:
    if s is None:
        return ""
    return " ".join(x for x in (s.name, s.product, s.version,
                                f"({s.extrainfo})" if s.extrainfo else None) if x)


def _svc_key(s: Service) -> tuple[str, str, str, str]:
    return (s.name or "", s.product or "", s.version or "", s.extrainfo or "")


def _cert(s: Service | None) -> str | None:
    if s is None or not s.tls:
        return None
    sha = s.tls.get("sha256")
    return str(sha) if sha else None


def _state_text(p: PortResult | None) -> str:
    if p is None:
        return "not reported"
    return f"{p.state.value} ({p.reason})" if p.reason else p.state.value


def _audited(run: ScanRun) -> bool:
    return bool(run.findings) or any(k in run.extra for k in ("checks", "audit", "audited"))


def diff_runs(a: ScanRun, b: ScanRun) -> RunDiff:
    """The changes from run *a* (before) to run *b* (after)."""
    ha = {h.address: expand_host(h) for h in a.hosts}
    hb = {h.address: expand_host(h) for h in b.hosts}
    sa, sb = Scope(a, ha), Scope(b, hb)
    changes: list[Change] = []
    skipped: list[Change] = []
    compare_findings = _audited(a) and _audited(b)

    for address in sorted(set(ha) | set(hb), key=address_key):
        x, y = ha.get(address), hb.get(address)
        xs = x.status if x else None
        ys = y.status if y else None
        if x is not None and y is None:
            if sb.has_host(address) and xs is HostStatus.UP:
                changes.append(Change("host-down", address, before="up", after="not found",
                                      detail="host not found in the later run"))
            elif not sb.has_host(address):
                skipped.append(Change("host-down", address, before=xs.value if xs else None,
                                      detail="host outside the later run's targets"))
        elif x is None and y is not None:
            if sa.has_host(address) and ys is HostStatus.UP:
                changes.append(Change("host-up", address, before="not found", after="up",
                                      detail="host not found in the earlier run"))
            elif not sa.has_host(address) and ys is HostStatus.UP:
                skipped.append(Change("host-up", address, after="up",
                                      detail="host outside the earlier run's targets"))
        elif x is not None and y is not None and xs != ys and \
                HostStatus.UP in (xs, ys):
            kind = "host-up" if ys is HostStatus.UP else "host-down"
            changes.append(Change(kind, address, before=xs.value if xs else None,
                                  after=ys.value if ys else None,
                                  detail=f"{xs.value if xs else '?'} -> "
                                         f"{ys.value if ys else '?'}"))
        _diff_ports(address, x, y, sa, sb, changes, skipped)
        if compare_findings:
            _diff_findings(address, x, y, changes)
    return RunDiff(a=a, b=b, changes=tuple(changes), not_compared=tuple(skipped))


def _diff_ports(address: str, x: Host | None, y: Host | None, sa: Scope, sb: Scope,
                changes: list[Change], skipped: list[Change]) -> None:
    pa = {p.key: p for p in x.ports} if x else {}
    pb = {p.key: p for p in y.ports} if y else {}
    for key in sorted(set(pa) | set(pb), key=lambda k: (k[0], k[1])):
        proto, port = key
        p, q = pa.get(key), pb.get(key)
        was_open = p is not None and p.state in _OPENISH
        is_open = q is not None and q.state in _OPENISH
        in_both = sa.has_port(address, proto, port) and sb.has_port(address, proto, port)
        if was_open != is_open:
            kind = "port-opened" if is_open else "port-closed"
            svc = _svc_text((q.service if q is not None else None)
                            or (p.service if p is not None else None))
            change = Change(kind, address, proto, port, before=_state_text(p),
                            after=_state_text(q), detail=svc)
            if in_both:
                changes.append(change)
            else:
                skipped.append(Change(kind, address, proto, port, before=_state_text(p),
                                      after=_state_text(q),
                                      detail="outside the "
                                             f"{'later' if p else 'earlier'} run's scope"))
            continue
        if p is None or q is None:
            continue
        if p.state is not q.state:
            if in_both:
                changes.append(Change("port-state", address, proto, port,
                                      before=_state_text(p), after=_state_text(q)))
            continue
        if not is_open:
            continue
        s, t = p.service, q.service
        if s is not None and t is not None and s.detected and t.detected \
                and _svc_key(s) != _svc_key(t):
            changes.append(Change("service-changed", address, proto, port,
                                  before=_svc_text(s), after=_svc_text(t)))
        ca, cb = _cert(s), _cert(t)
        if ca and cb and ca != cb:
            changes.append(Change("cert-changed", address, proto, port, before=ca, after=cb,
                                  detail=_cert_detail(t)))


def _cert_detail(s: Service | None) -> str:
    if s is None or not s.tls:
        return ""
    parts = []
    if s.tls.get("subject_cn"):
        parts.append(f"CN={s.tls['subject_cn']}")
    if s.tls.get("not_after"):
        parts.append(f"valid until {s.tls['not_after']}")
    return ", ".join(parts)


def _finding_key(f: Finding) -> str:
    return f.id or f"{f.check}:{f.protocol}:{f.port}"


def _diff_findings(address: str, x: Host | None, y: Host | None,
                   changes: list[Change]) -> None:
    fa = {_finding_key(f): f for f in x.findings} if x else {}
    fb = {_finding_key(f): f for f in y.findings} if y else {}
    if y is None or (y.status is not HostStatus.UP and not y.ports):
        return  # not scanned this time: nothing is resolved
    for key in sorted(set(fa) - set(fb)):
        f = fa[key]
        changes.append(Change("finding-resolved", address,
                              f.protocol.value if f.protocol else None, f.port,
                              before=f.severity.value, detail=f"{f.title} [{f.check}]"))
    for key in sorted(set(fb) - set(fa)):
        f = fb[key]
        changes.append(Change("finding-new", address,
                              f.protocol.value if f.protocol else None, f.port,
                              after=f.severity.value, detail=f"{f.title} [{f.check}]"))


# --------------------------------------------------------------------------------------
# text


_SIGN = {"host-up": "+", "host-down": "-", "port-opened": "+", "port-closed": "-",
         "port-state": "~", "service-changed": "~", "cert-changed": "~", "finding-new": "+",
         "finding-resolved": "-"}
_LABEL = {"host-up": "host up", "host-down": "host down", "port-opened": "opened",
          "port-closed": "closed", "port-state": "state", "service-changed": "service",
          "cert-changed": "certificate", "finding-new": "new finding",
          "finding-resolved": "resolved finding"}


def _line(c: Change) -> str:
    where = f"{c.port}/{c.protocol}" if c.port is not None else ""
    sign = _SIGN.get(c.kind, "~")
    label = _LABEL.get(c.kind, c.kind)
    if c.kind in ("port-opened", "port-closed", "port-state"):
        body = f"{c.before} -> {c.after}"
        if c.detail:
            body += f"  {c.detail}"
    elif c.kind in ("service-changed", "cert-changed"):
        body = f"{c.before or '-'} -> {c.after or '-'}"
        if c.detail:
            body += f"  ({c.detail})"
    elif c.kind.startswith("finding"):
        sev = (c.after or c.before or "").upper()
        body = f"{sev}: {c.detail}"
    else:
        body = c.detail
    return f"  {sign} {where:<11} {label:<16} {body}".rstrip()


def render_text(d: RunDiff, printable: Callable[[str], str] = str) -> str:
    out = [f"portscope diff {d.a.id} -> {d.b.id}",
           f"- {format_time(d.a.started)}  {printable(d.a.command or d.a.vantage)}",
           f"+ {format_time(d.b.started)}  {printable(d.b.command or d.b.vantage)}", ""]
    by_host: dict[str, list[Change]] = {}
    for c in d.changes:
        by_host.setdefault(c.address, []).append(c)
    for address in sorted(by_host, key=address_key):
        out.append(address)
        out.extend(printable(_line(c)) for c in by_host[address])
        out.append("")
    counts = ", ".join(f"{d.count(k)} {_LABEL[k]}" for k in KINDS if d.count(k))
    if d.changes:
        out.append(f"{len(d.changes)} change(s): {counts}")
    else:
        out.append("no differences")
    if d.not_compared:
        out.append(f"not compared: {len(d.not_compared)} host(s)/port(s) outside one run's "
                   f"scope (--json lists them)")
    for run, name in ((d.a, "earlier"), (d.b, "later")):
        if not run.complete:
            out.append(f"note: the {name} run ({run.id}) is incomplete")
    return "\n".join(out) + "\n"
