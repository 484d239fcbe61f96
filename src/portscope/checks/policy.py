"""Policy: what may be open where, and a finding for every deviation (the seed's "close
everything except 80 and 20/21" made checkable). A YAML file::

    name: Example perimeter
    groups:
      office: [203.0.113.0/24, 2001:db8:100::/48]
    hosts:
      - name: web servers
        targets: [198.18.0.0/28]
        allow:
          - tcp/80
          - tcp/443
          - {ports: tcp/20-21, from: [office]}   # only from the office range
        require: [tcp/443]                       # must be open
      - name: everything else
        targets: [0.0.0.0/0, "::/0"]
        allow: []

The first ``hosts`` rule whose targets contain the address applies (like a firewall).
An open port no ``allow`` item covers is a ``policy.not-allowed`` finding; a port allowed
only ``from`` some sources but reached from the scanner's address outside them is
``policy.source-not-allowed``; a ``require``d port that was scanned and is not open is
``policy.missing``. Ports: ``80``, ``tcp/80``, ``udp/53``, ``20-21``, ``tcp/20-21``,
comma lists (``tcp/80,443``: the protocol carries over). Pure: :func:`parse_policy`
takes the parsed document, :func:`load_policy` reads the file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portscope.checks.base import Context, port_evidence
from portscope.errors import DataError, reading
from portscope.model import Finding, Host, PortResult, PortState, Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_REQUIRED = 256  # ports one require item may expand to


@dataclass(frozen=True, slots=True)
class PortRange:
    protocol: str
    lo: int
    hi: int

    def covers(self, port: int, protocol: str) -> bool:
        return protocol == self.protocol and self.lo <= port <= self.hi

    def __str__(self) -> str:
        span = str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"
        return f"{self.protocol}/{span}"


@dataclass(frozen=True, slots=True)
class Allow:
    ports: tuple[PortRange, ...]
    sources: tuple[IPNetwork, ...] | None = None  # None: from anywhere
    source_names: tuple[str, ...] = ()

    def covers(self, port: int, protocol: str) -> bool:
        return any(r.covers(port, protocol) for r in self.ports)

    def allows_source(self, address: str) -> bool:
        if self.sources is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in self.sources if n.version == ip.version)


@dataclass(frozen=True, slots=True)
class HostRule:
    name: str
    targets: tuple[IPNetwork, ...]
    allow: tuple[Allow, ...]
    require: tuple[PortRange, ...] = ()

    def applies_to(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in self.targets if n.version == ip.version)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    rules: tuple[HostRule, ...]
    source: str = "policy"

    def rule_for(self, address: str) -> HostRule | None:
        return next((r for r in self.rules if r.applies_to(address)), None)


# --------------------------------------------------------------------------------------
# parsing


def parse_port_ranges(spec: Any, where: str) -> tuple[PortRange, ...]:
    items: list[Any] = spec if isinstance(spec, list) else [spec]
    out: list[PortRange] = []
    for item in items:
        proto = "tcp"
        for raw in str(item).split(","):
            token = raw.strip().lower()
            if not token:
                continue
            if "/" in token:
                proto, _, token = token.partition("/")
                if proto not in ("tcp", "udp"):
                    raise DataError(f"{where}: {raw.strip()!r}: protocol must be tcp or udp")
            a, dash, b = token.partition("-")
            try:
                lo = int(a)
                hi = int(b) if dash else lo
            except ValueError:
                raise DataError(f"{where}: {raw.strip()!r} is not a port or range "
                                f"(e.g. 80, tcp/20-21, udp/53)") from None
            if not 0 <= lo <= hi <= 65535:
                raise DataError(f"{where}: {raw.strip()!r} is out of range")
            out.append(PortRange(proto, lo, hi))
    if not out:
        raise DataError(f"{where}: no ports given")
    return tuple(out)


def _networks(values: Any, groups: Mapping[str, tuple[IPNetwork, ...]],
              where: str) -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise DataError(f"{where}: expected a list of networks or group names")
    nets: list[IPNetwork] = []
    names: list[str] = []
    for v in values:
        text = str(v)
        if text in groups:
            nets.extend(groups[text])
            names.append(text)
            continue
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            known = ", ".join(sorted(groups)) or "none defined"
            raise DataError(f"{where}: {text!r} is neither a network nor a group "
                            f"(groups: {known})") from None
        names.append(text)
    return tuple(nets), tuple(names)


def parse_policy(doc: Any, source: str = "policy") -> Policy:
    if not isinstance(doc, Mapping):
        raise DataError(f"{source}: a policy is a mapping with 'hosts' (see docs/audit.md)")
    unknown = set(doc) - {"name", "groups", "hosts"}
    if unknown:
        raise DataError(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    groups: dict[str, tuple[IPNetwork, ...]] = {}
    for gname, members in (doc.get("groups") or {}).items():
        groups[str(gname)] = _networks(members, {}, f"{source}: groups.{gname}")[0]
    hosts = doc.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise DataError(f"{source}: 'hosts' must be a non-empty list of rules")
    rules = []
    for i, raw in enumerate(hosts):
        where = f"{source}: hosts[{i}]"
        if not isinstance(raw, Mapping):
            raise DataError(f"{where}: expected a mapping")
        unknown = set(raw) - {"name", "targets", "allow", "require"}
        if unknown:
            raise DataError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        if "targets" not in raw:
            raise DataError(f"{where}: missing 'targets'")
        targets, _ = _networks(raw["targets"], groups, f"{where}.targets")
        allows = []
        for j, item in enumerate(raw.get("allow") or []):
            w = f"{where}.allow[{j}]"
            if isinstance(item, Mapping):
                extra = set(item) - {"ports", "from"}
                if extra or "ports" not in item:
                    raise DataError(f"{w}: expected {{ports: ..., from: [...]}}")
                sources = names = None
                if item.get("from") not in (None, "any", ["any"]):
                    sources, names = _networks(item["from"], groups, f"{w}.from")
                allows.append(Allow(parse_port_ranges(item["ports"], f"{w}.ports"), sources,
                                    names or ()))
            else:
                allows.append(Allow(parse_port_ranges(item, w)))
        require = parse_port_ranges(raw["require"], f"{where}.require") \
            if raw.get("require") else ()
        rules.append(HostRule(str(raw.get("name") or f"rule {i + 1}"), targets, tuple(allows),
                              require))
    return Policy(str(doc.get("name") or Path(source).name), tuple(rules), source)


def load_policy(path: str | Path) -> Policy:
    import yaml

    label = str(path)
    with reading(label):
        text = Path(path).expanduser().read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{label}: not valid YAML{at}") from None
    return parse_policy(doc, label)


# --------------------------------------------------------------------------------------
# the check


def _scanned(ctx: Context) -> dict[Protocol, set[int]]:
    from portscope.report._common import scanned_ports

    return {proto: set(nums) for proto, nums in scanned_ports(ctx.run).items()}


def _kb_level(ctx: Context, p: PortResult) -> str:
    e = ctx.entry(p)
    return e.severity.value if e is not None else "info"


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    policy = ctx.config.policy
    if not isinstance(policy, Policy):
        return
    rule = policy.rule_for(host.address)
    if rule is None:
        return
    source = ctx.config.source or host.extra.get("scanned_from")
    base = {"rule": f"{policy.name}: {rule.name}", "policy": policy.name}
    for p in ctx.open_ports(host):
        proto = p.protocol.value
        covering = [a for a in rule.allow if a.covers(p.port, proto)]
        entry = ctx.entry(p)
        params = {**base, "kb_level": _kb_level(ctx, p)}
        if not covering:
            yield ctx.finding("policy.not-allowed", host, p, entry=entry, params=params,
                              parts={"level_reason": "level_reason"},
                              evidence=port_evidence(p) + f"\npolicy {policy.source}, rule "
                              f"{rule.name!r}: no allow item covers {p.port}/{proto}",
                              extra={"policy_rule": rule.name})
            continue
        if any(a.sources is None for a in covering):
            continue
        allowed_names = sorted({n for a in covering for n in a.source_names})
        sources_text = ", ".join(allowed_names)
        if source and any(a.allows_source(str(source)) for a in covering):
            continue
        shown = str(source) if source else "this scanner (address unknown)"
        yield ctx.finding("policy.source-not-allowed", host, p, entry=entry,
                          params={**params, "sources": sources_text, "source": shown},
                          parts={"level_reason": "level_reason"},
                          confidence=90 if source else 50,
                          evidence=port_evidence(p) + f"\nreached from {shown}; policy "
                          f"allows only {sources_text}", extra={"policy_rule": rule.name})
    if rule.require:
        scanned = _scanned(ctx)
        for r in rule.require:
            proto = Protocol(r.protocol)
            for port in range(r.lo, min(r.hi, r.lo + MAX_REQUIRED - 1) + 1):
                if port not in scanned.get(proto, set()):
                    continue
                pr = host.port(port, proto)
                if pr is not None and pr.state is PortState.OPEN:
                    continue
                fake = pr or PortResult(port, proto, PortState.CLOSED, "")
                state = pr.state.value if pr is not None else "not open"
                yield ctx.finding("policy.missing", host, fake, params=base,
                                  evidence=f"{port}/{proto.value} {state}",
                                  extra={"policy_rule": rule.name})


__all__ = ["Allow", "HostRule", "Policy", "PortRange", "check", "load_policy", "parse_policy"]
