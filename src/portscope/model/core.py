"""The one result model: frozen dataclasses and enums, with to_dict/from_dict.

Everything that produces or consumes results (engines, store, reports, web,
workers) speaks these types; conversion to JSON happens only at the edges,
through ``to_dict``/``from_dict``. ``from_dict`` validates what it reads and
raises :class:`~portscope.errors.DataError` on anything malformed, so a corrupt
file never turns into a traceback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any, TypeVar

from portscope.errors import DataError

SCHEMA_VERSION = 1
"""Version of the JSON contract. Bump on breaking changes; readers accept <= this."""


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class PortState(StrEnum):
    """Port states with nmap's meaning (see docs/states.md)."""

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    UNFILTERED = "unfiltered"
    OPEN_FILTERED = "open|filtered"
    CLOSED_FILTERED = "closed|filtered"


class HostStatus(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class Reason(StrEnum):
    """Why a state was decided; the strings are nmap's where nmap has one."""

    SYN_ACK = "syn-ack"
    RESET = "reset"
    CONN_REFUSED = "conn-refused"
    NO_RESPONSE = "no-response"
    HOST_UNREACH = "host-unreach"
    NET_UNREACH = "net-unreach"
    PROTO_UNREACH = "proto-unreach"
    PORT_UNREACH = "port-unreach"
    ADMIN_PROHIBITED = "admin-prohibited"
    HOST_PROHIBITED = "host-prohibited"
    NET_PROHIBITED = "net-prohibited"
    TIME_EXCEEDED = "time-exceeded"
    UDP_RESPONSE = "udp-response"
    ECHO_REPLY = "echo-reply"
    TIMESTAMP_REPLY = "timestamp-reply"
    ARP_RESPONSE = "arp-response"
    ND_RESPONSE = "nd-response"
    USER_SET = "user-set"
    LOCALHOST_RESPONSE = "localhost-response"
    TCP_RESPONSE = "tcp-response"
    CONN_TIMEOUT = "conn-timeout"
    ICMP_RATELIMIT = "icmp-ratelimit"  # portscope: could not be resolved, ICMP was rate-limited
    IMPORTED = "imported"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: info=0 ... critical=4."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


# --------------------------------------------------------------------------------------
# validation helpers for from_dict


E = TypeVar("E", bound=StrEnum)


def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise DataError(f"{where}: expected an object, got {type(d).__name__}")
    if key not in d:
        raise DataError(f"{where}: missing field {key!r}")
    return d[key]


def _str(v: Any, where: str, *, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise DataError(f"{where}: expected a string, got {type(v).__name__}")
    return v


def _int(v: Any, where: str, *, optional: bool = False, lo: int | None = None,
         hi: int | None = None) -> int | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise DataError(f"{where}: expected an integer, got {type(v).__name__}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise DataError(f"{where}: {v} out of range")
    return v


def _float(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise DataError(f"{where}: expected a number, got {type(v).__name__}")
    return float(v)


def _enum(cls: type[E], v: Any, where: str) -> E:
    try:
        return cls(v)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise DataError(f"{where}: {v!r} is not one of {allowed}") from None


def _list(v: Any, where: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise DataError(f"{where}: expected a list, got {type(v).__name__}")
    return v


def _strs(v: Any, where: str) -> tuple[str, ...]:
    return tuple(str(_str(x, where)) for x in _list(v, where))


def _mapping(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise DataError(f"{where}: expected an object, got {type(v).__name__}")
    return dict(v)


def parse_time(v: Any, where: str) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return datetime.fromtimestamp(v, UTC)
    s = _str(v, where)
    assert s is not None
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{where}: {s!r} is not an ISO 8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def format_time(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_address(address: str) -> str:
    """Canonical text of an IP address; raises DataError if it is not one."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise DataError(f"{address!r} is not an IP address") from None


def address_key(address: str) -> tuple[int, int]:
    """Sort key for addresses: IPv4 before IPv6, numeric order."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0)
    return (ip.version, int(ip))


# --------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True, slots=True)
class Service:
    """What answers on a port. ``method`` says how we know: a port-number guess
    ("port-table") is never shown as a detection."""

    name: str
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    cpe: tuple[str, ...] = ()
    banner: str | None = None
    tls: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    method: str = "port-table"  # "port-table" | "banner" | "probe"
    confidence: int = 3  # 0-10, nmap's conf scale (3 = guessed from the port table)
    tunnel: str | None = None  # "ssl" when the service speaks inside TLS

    @property
    def detected(self) -> bool:
        return self.method != "port-table"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "product": self.product,
            "version": self.version,
            "extrainfo": self.extrainfo,
            "cpe": list(self.cpe),
            "banner": self.banner,
            "tls": dict(self.tls) if self.tls is not None else None,
            "extra": dict(self.extra),
            "method": self.method,
            "confidence": self.confidence,
            "tunnel": self.tunnel,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "service") -> Service:
        tls = d.get("tls")
        return cls(
            name=str(_str(_req(d, "name", where), f"{where}.name")),
            product=_str(d.get("product"), f"{where}.product", optional=True),
            version=_str(d.get("version"), f"{where}.version", optional=True),
            extrainfo=_str(d.get("extrainfo"), f"{where}.extrainfo", optional=True),
            cpe=_strs(d.get("cpe"), f"{where}.cpe"),
            banner=_str(d.get("banner"), f"{where}.banner", optional=True),
            tls=_mapping(tls, f"{where}.tls") if tls is not None else None,
            extra=_mapping(d.get("extra"), f"{where}.extra"),
            method=str(_str(d.get("method", "port-table"), f"{where}.method")),
            confidence=int(_int(d.get("confidence", 3), f"{where}.confidence", lo=0, hi=10) or 0),
            tunnel=_str(d.get("tunnel"), f"{where}.tunnel", optional=True),
        )


@dataclass(frozen=True, slots=True)
class PortResult:
    port: int
    protocol: Protocol
    state: PortState
    reason: str
    ttl: int | None = None
    service: Service | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.protocol.value, self.port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "protocol": self.protocol.value,
            "state": self.state.value,
            "reason": self.reason,
            "ttl": self.ttl,
            "service": self.service.to_dict() if self.service else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "port") -> PortResult:
        port = _int(_req(d, "port", where), f"{where}.port", lo=0, hi=65535)
        where = f"{where} {port}"
        svc = d.get("service")
        return cls(
            port=int(port or 0),
            protocol=_enum(Protocol, _req(d, "protocol", where), f"{where}.protocol"),
            state=_enum(PortState, _req(d, "state", where), f"{where}.state"),
            reason=str(_str(d.get("reason", ""), f"{where}.reason")),
            ttl=_int(d.get("ttl"), f"{where}.ttl", optional=True, lo=0, hi=255),
            service=Service.from_dict(_mapping(svc, f"{where}.service"), f"{where}.service")
            if svc is not None
            else None,
        )


def sort_ports(ports: Iterable[PortResult]) -> list[PortResult]:
    """*ports* in protocol, then port order (tcp before udp), as a new list.

    It runs on the 65,535 ports of a -p- scan: many distinct ports are placed in a table
    by number (linear, ~4x faster than sorting their random scan order); otherwise, or
    with a port twice, two stable sorts on C-level keys."""
    items = ports if isinstance(ports, list) else list(ports)
    if len(items) >= 1024:
        tcp: list[PortResult | None] = [None] * 65536
        udp: list[PortResult | None] = [None] * 65536
        t = Protocol.TCP
        for p in items:
            n = p.port
            table = tcp if p.protocol is t else udp
            if not 0 <= n <= 65535 or table[n] is not None:
                break  # out of range, or the same port twice: sort instead
            table[n] = p
        else:
            return [p for p in tcp if p is not None] + [p for p in udp if p is not None]
    out = sorted(items, key=_BY_PORT)
    out.sort(key=_BY_PROTOCOL)  # StrEnum members compare as their strings
    return out


_BY_PORT = attrgetter("port")
_BY_PROTOCOL = attrgetter("protocol")


def _port_result_maker() -> Callable[[int, Protocol, PortState, str, int | None], PortResult]:
    new = object.__new__
    slots: dict[str, Any] = dict(vars(PortResult))  # the slots' member descriptors
    set_port, set_proto, set_state, set_reason, set_ttl, set_service = (
        slots[name].__set__ for name in ("port", "protocol", "state", "reason", "ttl",
                                         "service"))

    def make(port: int, protocol: Protocol, state: PortState, reason: str,
             ttl: int | None) -> PortResult:
        r: PortResult = new(PortResult)
        set_port(r, port)
        set_proto(r, protocol)
        set_state(r, state)
        set_reason(r, reason)
        set_ttl(r, ttl)
        set_service(r, None)
        return r

    return make


# ``PortResult(port, protocol, state, reason, ttl)`` at half the cost (the frozen
# dataclass's __init__ goes through object.__setattr__ per field): for the raw engines,
# which make one per port
fast_port_result = _port_result_maker()


@dataclass(frozen=True, slots=True)
class ExtraReason:
    reason: str
    count: int
    protocol: Protocol
    ports: str  # compact port list, e.g. "1-21,23-79"

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "count": self.count, "protocol": self.protocol.value,
                "ports": self.ports}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "extrareason") -> ExtraReason:
        return cls(
            reason=str(_str(_req(d, "reason", where), f"{where}.reason")),
            count=int(_int(_req(d, "count", where), f"{where}.count", lo=0) or 0),
            protocol=_enum(Protocol, d.get("protocol", "tcp"), f"{where}.protocol"),
            ports=str(_str(d.get("ports", ""), f"{where}.ports")),
        )


@dataclass(frozen=True, slots=True)
class ExtraPorts:
    """Ports not listed one by one (like nmap's <extraports>), with their exact port lists
    so nothing is lost."""

    state: PortState
    count: int
    reasons: tuple[ExtraReason, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "count": self.count,
                "reasons": [r.to_dict() for r in self.reasons]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "extraports") -> ExtraPorts:
        return cls(
            state=_enum(PortState, _req(d, "state", where), f"{where}.state"),
            count=int(_int(_req(d, "count", where), f"{where}.count", lo=0) or 0),
            reasons=tuple(ExtraReason.from_dict(_mapping(r, where), f"{where}.reasons")
                          for r in _list(d.get("reasons"), f"{where}.reasons")),
        )


@dataclass(frozen=True, slots=True)
class OSGuess:
    name: str
    accuracy: int  # percent
    family: str | None = None
    vendor: str | None = None
    cpe: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "accuracy": self.accuracy, "family": self.family,
                "vendor": self.vendor, "cpe": list(self.cpe), "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "os") -> OSGuess:
        return cls(
            name=str(_str(_req(d, "name", where), f"{where}.name")),
            accuracy=int(_int(_req(d, "accuracy", where), f"{where}.accuracy", lo=0, hi=100) or 0),
            family=_str(d.get("family"), f"{where}.family", optional=True),
            vendor=_str(d.get("vendor"), f"{where}.vendor", optional=True),
            cpe=_strs(d.get("cpe"), f"{where}.cpe"),
            evidence=_mapping(d.get("evidence"), f"{where}.evidence"),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One security finding: what is wrong, how bad, why that level, and what to do."""

    id: str
    check: str
    severity: Severity
    severity_reason: str
    title: str
    port: int | None = None
    protocol: Protocol | None = None
    risk: str = ""
    evidence: str = ""
    remediation: str = ""
    references: tuple[str, ...] = ()
    confidence: int = 100  # percent
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity.value,
            "severity_reason": self.severity_reason,
            "port": self.port,
            "protocol": self.protocol.value if self.protocol else None,
            "title": self.title,
            "risk": self.risk,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "references": list(self.references),
            "confidence": self.confidence,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "finding") -> Finding:
        proto = d.get("protocol")
        return cls(
            id=str(_str(_req(d, "id", where), f"{where}.id")),
            check=str(_str(_req(d, "check", where), f"{where}.check")),
            severity=_enum(Severity, _req(d, "severity", where), f"{where}.severity"),
            severity_reason=str(_str(d.get("severity_reason", ""), f"{where}.severity_reason")),
            title=str(_str(_req(d, "title", where), f"{where}.title")),
            port=_int(d.get("port"), f"{where}.port", optional=True, lo=0, hi=65535),
            protocol=_enum(Protocol, proto, f"{where}.protocol") if proto is not None else None,
            risk=str(_str(d.get("risk", ""), f"{where}.risk")),
            evidence=str(_str(d.get("evidence", ""), f"{where}.evidence")),
            remediation=str(_str(d.get("remediation", ""), f"{where}.remediation")),
            references=_strs(d.get("references"), f"{where}.references"),
            confidence=int(_int(d.get("confidence", 100), f"{where}.confidence", lo=0, hi=100)
                           or 0),
            extra=_mapping(d.get("extra"), f"{where}.extra"),
        )


@dataclass(frozen=True, slots=True)
class Host:
    address: str
    status: HostStatus = HostStatus.UNKNOWN
    reason: str = ""
    hostnames: tuple[str, ...] = ()
    ports: tuple[PortResult, ...] = ()
    extraports: tuple[ExtraPorts, ...] = ()
    os: OSGuess | None = None
    findings: tuple[Finding, ...] = ()
    mac: str | None = None
    rtt_ms: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def port(self, port: int, protocol: Protocol | str = Protocol.TCP) -> PortResult | None:
        proto = Protocol(protocol)
        for p in self.ports:
            if p.port == port and p.protocol is proto:
                return p
        return None

    def ports_in(self, *states: PortState) -> list[PortResult]:
        return [p for p in self.ports if p.state in states]

    @property
    def open_ports(self) -> list[PortResult]:
        return self.ports_in(PortState.OPEN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "hostnames": list(self.hostnames),
            "status": self.status.value,
            "reason": self.reason,
            "mac": self.mac,
            "rtt_ms": self.rtt_ms,
            "os": self.os.to_dict() if self.os else None,
            "ports": [p.to_dict() for p in self.ports],
            "extraports": [e.to_dict() for e in self.extraports],
            "findings": [f.to_dict() for f in self.findings],
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "host") -> Host:
        addr = str(_str(_req(d, "address", where), f"{where}.address"))
        where = f"host {addr}"
        os_d = d.get("os")
        rtt = d.get("rtt_ms")
        return cls(
            address=normalize_address(addr),
            hostnames=_strs(d.get("hostnames"), f"{where}.hostnames"),
            status=_enum(HostStatus, d.get("status", "unknown"), f"{where}.status"),
            reason=str(_str(d.get("reason", ""), f"{where}.reason")),
            mac=_str(d.get("mac"), f"{where}.mac", optional=True),
            rtt_ms=_float(rtt, f"{where}.rtt_ms") if rtt is not None else None,
            os=OSGuess.from_dict(_mapping(os_d, f"{where}.os"), f"{where}.os")
            if os_d is not None else None,
            ports=tuple(PortResult.from_dict(_mapping(p, f"{where}.ports"), f"{where} port")
                        for p in _list(d.get("ports"), f"{where}.ports")),
            extraports=tuple(ExtraPorts.from_dict(_mapping(e, f"{where}.extraports"),
                                                  f"{where}.extraports")
                             for e in _list(d.get("extraports"), f"{where}.extraports")),
            findings=tuple(Finding.from_dict(_mapping(f, f"{where}.findings"), f"{where} finding")
                           for f in _list(d.get("findings"), f"{where}.findings")),
            extra=_mapping(d.get("extra"), f"{where}.extra"),
        )


@dataclass(frozen=True, slots=True)
class Stats:
    probes_sent: int = 0
    replies: int = 0
    retransmissions: int = 0
    duration_s: float = 0.0
    pps: float = 0.0
    hosts_total: int = 0
    hosts_up: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"probes_sent": self.probes_sent, "replies": self.replies,
                "retransmissions": self.retransmissions,
                "duration_s": round(self.duration_s, 6), "pps": round(self.pps, 1),
                "hosts_total": self.hosts_total, "hosts_up": self.hosts_up}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "stats") -> Stats:
        def n(key: str) -> int:
            return int(_int(d.get(key, 0), f"{where}.{key}", lo=0) or 0)
        return cls(probes_sent=n("probes_sent"), replies=n("replies"),
                   retransmissions=n("retransmissions"),
                   duration_s=_float(d.get("duration_s", 0.0), f"{where}.duration_s"),
                   pps=_float(d.get("pps", 0.0), f"{where}.pps"),
                   hosts_total=n("hosts_total"), hosts_up=n("hosts_up"))


@dataclass(frozen=True, slots=True)
class ScanRun:
    """One run of a scan: what was asked, what was found, how it went.

    ``ports_spec`` is the canonical scope of ports scanned (e.g. ``T:1-1024,U:53``) and
    ``targets`` the target specs, so a diff can tell "closed" from "not scanned".
    """

    id: str
    started: datetime
    finished: datetime | None = None
    command: str = ""
    scan_types: tuple[str, ...] = ()
    ports_spec: str = ""
    targets: tuple[str, ...] = ()
    vantage: str = ""
    complete: bool = True
    hosts: tuple[Host, ...] = ()
    stats: Stats = field(default_factory=Stats)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def host(self, address: str) -> Host | None:
        for h in self.hosts:
            if h.address == address:
                return h
        return None

    def iter_ports(self) -> Iterator[tuple[Host, PortResult]]:
        for h in self.hosts:
            for p in h.ports:
                yield h, p

    @property
    def findings(self) -> list[tuple[Host, Finding]]:
        return [(h, f) for h in self.hosts for f in h.findings]

    def with_hosts(self, hosts: Iterable[Host]) -> ScanRun:
        return replace(self, hosts=tuple(sorted(hosts, key=lambda h: address_key(h.address))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "run": {
                "id": self.id,
                "started": format_time(self.started),
                "finished": format_time(self.finished),
                "command": self.command,
                "scan_types": list(self.scan_types),
                "ports_spec": self.ports_spec,
                "targets": list(self.targets),
                "vantage": self.vantage,
                "complete": self.complete,
                "extra": dict(self.extra),
            },
            "hosts": [h.to_dict() for h in self.hosts],
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScanRun:
        where = "document"
        if not isinstance(d, Mapping):
            raise DataError("not a portscope result document (expected a JSON object)")
        version = d.get("schema_version")
        if version is None or "run" not in d:
            raise DataError("not a portscope result document (no schema_version/run)")
        v = _int(version, "schema_version", lo=1)
        if v is not None and v > SCHEMA_VERSION:
            raise DataError(
                f"result document has schema_version {v}; this portscope reads <= "
                f"{SCHEMA_VERSION}: upgrade portscope")
        run = _mapping(_req(d, "run", where), "run")
        _req(run, "id", "run")
        started = parse_time(run.get("started"), "run.started")
        return cls(
            id=str(_str(_req(run, "id", "run"), "run.id")),
            started=started or utcnow(),
            finished=parse_time(run.get("finished"), "run.finished"),
            command=str(_str(run.get("command", ""), "run.command")),
            scan_types=_strs(run.get("scan_types"), "run.scan_types"),
            ports_spec=str(_str(run.get("ports_spec", ""), "run.ports_spec")),
            targets=_strs(run.get("targets"), "run.targets"),
            vantage=str(_str(run.get("vantage", ""), "run.vantage")),
            complete=bool(run.get("complete", True)),
            extra=_mapping(run.get("extra"), "run.extra"),
            hosts=tuple(Host.from_dict(_mapping(h, "hosts"), "host")
                        for h in _list(d.get("hosts"), "hosts")),
            stats=Stats.from_dict(_mapping(d.get("stats"), "stats")),
        )
