"""Port specifications as nmap users type them.

``22,80,443`` · ``1-1024`` · ``-1024`` (from 1) · ``60000-`` (to 65535) · ``-`` or ``-p-``
(1-65535) · ``U:53,161,T:21-25,80`` (a protocol qualifier applies until the next one) ·
service names and globs: ``ssh,http*`` (looked up in the services database for every
protocol being scanned). Unqualified ports apply to every protocol being scanned.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from portscope.errors import PortSpecError
from portscope.model import format_port_list
from portscope.targets.services import ServiceDB, service_db

_QUALIFIERS = {"T": "tcp", "U": "udp", "S": "sctp", "P": "ip"}


@dataclass(frozen=True, slots=True)
class PortSpec:
    """Ports to scan per protocol (sorted, unique)."""

    tcp: tuple[int, ...] = ()
    udp: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.tcp) + len(self.udp)

    def __bool__(self) -> bool:
        return bool(self.tcp or self.udp)

    def ports(self, proto: str) -> tuple[int, ...]:
        return self.tcp if proto == "tcp" else self.udp if proto == "udp" else ()

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(p for p in ("tcp", "udp") if self.ports(p))

    def canonical(self) -> str:
        """``T:1-1024,U:53`` — the scope string stored with each run."""
        parts = []
        if self.tcp:
            parts.append("T:" + format_port_list(self.tcp))
        if self.udp:
            parts.append("U:" + format_port_list(self.udp))
        return ",".join(parts)

    def pair_at(self, i: int) -> tuple[str, int]:
        """(protocol, port) at index *i* over tcp then udp."""
        if i < len(self.tcp):
            return "tcp", self.tcp[i]
        return "udp", self.udp[i - len(self.tcp)]

    def without(self, other: PortSpec) -> PortSpec:
        return PortSpec(tcp=tuple(p for p in self.tcp if p not in set(other.tcp)),
                        udp=tuple(p for p in self.udp if p not in set(other.udp)))

    def contains(self, proto: str, port: int) -> bool:
        import bisect

        ports = self.ports(proto)
        i = bisect.bisect_left(ports, port)
        return i < len(ports) and ports[i] == port


def _range(text: str, spec: str) -> range:
    a, sep, b = text.partition("-")
    try:
        lo = int(a) if a else 1
        hi = int(b) if b else 65535
        if not sep:
            hi = lo
    except ValueError:
        raise PortSpecError(f"bad port range {text!r} in {spec!r}") from None
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
        raise PortSpecError(f"port out of range (0-65535) in {spec!r}: {text!r}")
    if lo > hi:
        raise PortSpecError(f"bad port range {text!r} in {spec!r}: start after end")
    return range(lo, hi + 1)


def parse_ports(spec: str, protocols: Iterable[str] = ("tcp",), *,
                db: ServiceDB | None = None) -> PortSpec:
    """Parse a ``-p`` argument for a scan of *protocols* ("tcp", "udp")."""
    protos = tuple(protocols)
    text = spec.strip()
    if not text:
        raise PortSpecError("empty port specification")
    sets: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    current: tuple[str, ...] = protos
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if len(item) >= 2 and item[1] == ":" and item[0].upper() in _QUALIFIERS:
            proto = _QUALIFIERS[item[0].upper()]
            if proto not in ("tcp", "udp"):
                raise PortSpecError(f"{proto.upper()} ports are not supported ({item!r})")
            current = (proto,)
            item = item[2:].strip()
            if not item:
                continue
        if item[0].isdigit() or item[0] == "-":
            r = _range(item, spec)
            for proto in current:
                sets[proto].update(r)
            continue
        # a service name or glob
        names_db = db or service_db()
        found = False
        for proto in current:
            if any(c in item for c in "*?["):
                matched = {port for (pr, port), name in names_db.by_port.items()
                           if pr == proto and fnmatch.fnmatch(name.lower(), item.lower())}
            else:
                matched = {port for pr, port in names_db.lookup(item) if pr == proto}
            if matched:
                found = True
                sets[proto].update(matched)
        if not found:
            where = "/".join(current)
            raise PortSpecError(f"unknown service name {item!r} for {where} "
                                f"(not in the services database)")
    result = PortSpec(tcp=tuple(sorted(sets["tcp"])) if "tcp" in protos or sets["tcp"] else (),
                      udp=tuple(sorted(sets["udp"])) if "udp" in protos or sets["udp"] else ())
    if not result:
        raise PortSpecError(f"port specification {spec!r} selects no port for "
                            f"{'/'.join(protos)}")
    return result


def top_ports(n: int, protocols: Iterable[str] = ("tcp",), *,
              db: ServiceDB | None = None) -> PortSpec:
    """The *n* most commonly open ports of each protocol."""
    if n <= 0:
        raise PortSpecError(f"--top-ports needs a positive number, not {n}")
    names_db = db or service_db()
    protos = tuple(protocols)
    n = min(n, 65535)
    return PortSpec(
        tcp=tuple(sorted(names_db.top(n, "tcp"))) if "tcp" in protos else (),
        udp=tuple(sorted(names_db.top(n, "udp"))) if "udp" in protos else (),
    )


def merge(a: PortSpec, b: PortSpec) -> PortSpec:
    return PortSpec(tcp=tuple(sorted(set(a.tcp) | set(b.tcp))),
                    udp=tuple(sorted(set(a.udp) | set(b.udp))))
