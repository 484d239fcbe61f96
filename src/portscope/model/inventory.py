"""The local view: listening sockets of one host (what ``ss -ltnup``/``netstat -an`` shows),
and its comparison with a scan of the same host from another vantage point.

An :class:`Inventory` is a document of its own (``"kind": "portscope-inventory"``) so one
taken on another host can be saved as JSON and compared later. A :class:`Comparison`
classifies every port into an :class:`Exposure` class (see docs/local.md for the exact
rules). Both follow the model's conventions: frozen dataclasses, ``to_dict``/``from_dict``,
:class:`~portscope.errors.DataError` on malformed input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from portscope.errors import DataError
from portscope.model.core import (
    PortState,
    Protocol,
    Severity,
    _enum,
    _int,
    _list,
    _mapping,
    _req,
    _str,
    _strs,
    format_time,
    normalize_address,
    parse_time,
    utcnow,
)

INVENTORY_KIND = "portscope-inventory"
COMPARISON_KIND = "portscope-comparison"
INVENTORY_SCHEMA_VERSION = 1


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class BindScope(StrEnum):
    """Which local addresses a socket accepts traffic on."""

    ALL = "all"  # wildcard: 0.0.0.0 or :: (every address of its family; :: maybe IPv4 too)
    LOOPBACK = "loopback"  # 127.0.0.0/8, ::1, ::ffff:127.x: only this host can connect
    SPECIFIC = "specific"  # one address of this host


class Exposure(StrEnum):
    """The class of a port in the inside/outside comparison (docs/local.md)."""

    EXPOSED = "exposed"  # listening here and open from the vantage point
    SHIELDED = "shielded"  # listening, filtered from the vantage point: a firewall works
    LOCAL_ONLY = "local-only"  # bound to loopback: nobody else can reach it
    UNEXPECTED = "unexpected"  # open from outside, but nothing here listens on it
    CLOSED_BUT_LISTED = "closed-but-listed"  # listening here, the scan got "closed"
    UNDETERMINED = "undetermined"  # listening; the scan could not tell (open|filtered ...)
    NOT_SCANNED = "not-scanned"  # listening; the scan did not look (port, protocol, address)

    @property
    def rank(self) -> int:
        """Display order: what needs attention first."""
        return _EXPOSURE_ORDER.index(self)


_EXPOSURE_ORDER = [
    Exposure.UNEXPECTED,
    Exposure.EXPOSED,
    Exposure.UNDETERMINED,
    Exposure.CLOSED_BUT_LISTED,
    Exposure.SHIELDED,
    Exposure.NOT_SCANNED,
    Exposure.LOCAL_ONLY,
]


# --------------------------------------------------------------------------------------
# addresses


def canonical_address(address: str) -> str:
    """Canonical text of an address, with IPv4-mapped IPv6 written ``::ffff:198.18.0.2``
    (as ss and newer Pythons write it); :class:`DataError` if it is not an address."""
    text = normalize_address(address)
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return text


def unmap(address: str) -> str:
    """``::ffff:198.18.0.2`` -> ``198.18.0.2``; anything else unchanged (canonical)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def bind_scope(address: str) -> BindScope:
    """The :class:`BindScope` of a bound address (IPv4-mapped IPv6 is judged as IPv4)."""
    ip = ipaddress.ip_address(unmap(address))
    if ip.is_unspecified:
        return BindScope.ALL
    if ip.is_loopback:
        return BindScope.LOOPBACK
    return BindScope.SPECIFIC


def _family_of(address: str) -> Family:
    return Family.IPV6 if ":" in address else Family.IPV4


# --------------------------------------------------------------------------------------
# inventory


@dataclass(frozen=True, slots=True)
class SocketProcess:
    """A process holding a socket (several may share one: a pre-forking server)."""

    pid: int
    name: str | None = None
    user: str | None = None
    fd: int | None = None
    cmdline: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "user": self.user, "fd": self.fd,
                "cmdline": list(self.cmdline)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "process") -> SocketProcess:
        return cls(
            pid=int(_int(_req(d, "pid", where), f"{where}.pid", lo=0) or 0),
            name=_str(d.get("name"), f"{where}.name", optional=True),
            user=_str(d.get("user"), f"{where}.user", optional=True),
            fd=_int(d.get("fd"), f"{where}.fd", optional=True, lo=0),
            cmdline=_strs(d.get("cmdline"), f"{where}.cmdline"),
        )


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    """One listening TCP socket or bound (unconnected) UDP socket.

    ``address`` is the bound address as the kernel reports it (``0.0.0.0``, ``::``,
    ``::ffff:198.18.0.2`` ...). ``v6only`` matters for ``::``: False means IPv4 reaches
    the socket too (``*`` in ss), None means unknown (the collector could not tell).
    ``uid``/``user`` are the socket's owner, known even without root; ``processes``
    need root for other users' processes.
    """

    protocol: Protocol
    family: Family
    address: str
    port: int
    state: str = "listen"  # "listen" (TCP) | "unconn" (UDP)
    scope: BindScope = BindScope.ALL
    uid: int | None = None
    user: str | None = None
    inode: int | None = None
    v6only: bool | None = None
    interface: str | None = None  # SO_BINDTODEVICE / link-local scope
    service: str | None = None  # name from the services table (a port-number guess)
    processes: tuple[SocketProcess, ...] = ()

    @classmethod
    def make(cls, protocol: Protocol | str, address: str, port: int, **kw: Any) -> ListeningSocket:
        """A socket with ``family`` and ``scope`` derived from *address*."""
        proto = Protocol(protocol)
        addr = canonical_address(address)
        kw.setdefault("state", "listen" if proto is Protocol.TCP else "unconn")
        return cls(protocol=proto, family=_family_of(addr), address=addr, port=port,
                   scope=bind_scope(addr), **kw)

    @property
    def pid(self) -> int | None:
        return self.processes[0].pid if self.processes else None

    @property
    def process(self) -> str | None:
        return self.processes[0].name if self.processes else None

    @property
    def key(self) -> tuple[str, int]:
        return (self.protocol.value, self.port)

    @property
    def dual_stack(self) -> bool:
        """An IPv6 wildcard socket that IPv4 reaches too (``v6only`` not set)."""
        return (self.family is Family.IPV6 and self.scope is BindScope.ALL
                and self.v6only is not True and unmap(self.address) == "::")

    @property
    def display_address(self) -> str:
        """Like ss: ``0.0.0.0``, ``[::]``, ``*`` (dual-stack ``::``), ``[fe80::1]%eth0``."""
        if self.family is Family.IPV6 and self.address == "::" and self.v6only is False:
            text = "*"
        elif self.family is Family.IPV6:
            text = f"[{self.address}]"
        else:
            text = self.address
        return f"{text}%{self.interface}" if self.interface else text

    def reaches(self, target: str) -> bool:
        """Whether traffic to local address *target* can arrive at this socket (by bind
        address alone; a firewall is the comparison's business)."""
        t = ipaddress.ip_address(unmap(target))
        bound = ipaddress.ip_address(unmap(self.address))
        if bound.is_unspecified:
            if bound.version == 4:  # 0.0.0.0, or ::ffff:0.0.0.0 on an IPv6 socket
                return t.version == 4
            if t.version == 6:
                return True
            return self.family is Family.IPV6 and self.v6only is not True
        return bound == t

    def sort_key(self) -> tuple[Any, ...]:
        ip = ipaddress.ip_address(self.address)
        return (self.protocol.value, self.port, ip.version, int(ip), self.pid or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol.value,
            "family": self.family.value,
            "address": self.address,
            "port": self.port,
            "state": self.state,
            "scope": self.scope.value,
            "v6only": self.v6only,
            "interface": self.interface,
            "uid": self.uid,
            "user": self.user,
            "inode": self.inode,
            "service": self.service,
            "pid": self.pid,
            "process": self.process,
            "processes": [p.to_dict() for p in self.processes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "socket") -> ListeningSocket:
        addr = canonical_address(str(_str(_req(d, "address", where), f"{where}.address")))
        port = int(_int(_req(d, "port", where), f"{where}.port", lo=0, hi=65535) or 0)
        where = f"{where} {addr}:{port}"
        v6only = d.get("v6only")
        if v6only is not None and not isinstance(v6only, bool):
            raise DataError(f"{where}.v6only: expected true, false or null")
        fam = d.get("family")
        procs = tuple(SocketProcess.from_dict(_mapping(p, f"{where}.processes"),
                                              f"{where} process")
                      for p in _list(d.get("processes"), f"{where}.processes"))
        if not procs and d.get("pid") is not None:  # a hand-written or minimal document
            procs = (SocketProcess(
                pid=int(_int(d.get("pid"), f"{where}.pid", lo=0) or 0),
                name=_str(d.get("process"), f"{where}.process", optional=True)),)
        scope = d.get("scope")
        return cls(
            protocol=_enum(Protocol, _req(d, "protocol", where), f"{where}.protocol"),
            family=_enum(Family, fam, f"{where}.family") if fam is not None
            else _family_of(addr),
            address=addr,
            port=port,
            state=str(_str(d.get("state") or "listen", f"{where}.state")),
            scope=_enum(BindScope, scope, f"{where}.scope") if scope is not None
            else bind_scope(addr),
            v6only=v6only,
            interface=_str(d.get("interface"), f"{where}.interface", optional=True),
            uid=_int(d.get("uid"), f"{where}.uid", optional=True, lo=0),
            user=_str(d.get("user"), f"{where}.user", optional=True),
            inode=_int(d.get("inode"), f"{where}.inode", optional=True, lo=0),
            service=_str(d.get("service"), f"{where}.service", optional=True),
            processes=procs,
        )


@dataclass(frozen=True, slots=True)
class LocalAddress:
    """An address configured on this host (which a scan from outside may target)."""

    address: str
    interface: str = ""
    prefixlen: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "interface": self.interface,
                "prefixlen": self.prefixlen}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "address") -> LocalAddress:
        return cls(
            address=canonical_address(str(_str(_req(d, "address", where), f"{where}.address"))),
            interface=str(_str(d.get("interface") or "", f"{where}.interface")),
            prefixlen=_int(d.get("prefixlen"), f"{where}.prefixlen", optional=True, lo=0,
                           hi=128),
        )


@dataclass(frozen=True, slots=True)
class Inventory:
    """The listening sockets of one host (or one network namespace) at one moment.

    ``process_detail`` is ``"full"`` when every socket's processes could be looked at
    (root), ``"partial"`` when only this user's were, ``"none"`` when none were.
    """

    hostname: str
    taken: datetime
    sockets: tuple[ListeningSocket, ...] = ()
    addresses: tuple[LocalAddress, ...] = ()
    collector: str = ""
    platform: str = ""
    netns: str | None = None
    process_detail: str = "full"
    notes: tuple[str, ...] = ()

    def with_sockets(self, sockets: Iterable[ListeningSocket]) -> Inventory:
        from dataclasses import replace

        return replace(self, sockets=tuple(sorted(sockets, key=ListeningSocket.sort_key)))

    def is_local_address(self, address: str) -> bool:
        a = unmap(address)
        return any(unmap(x.address) == a for x in self.addresses)

    def ports(self, protocol: Protocol | str) -> list[int]:
        proto = Protocol(protocol)
        return sorted({s.port for s in self.sockets if s.protocol is proto})

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": INVENTORY_KIND,
            "schema_version": INVENTORY_SCHEMA_VERSION,
            "hostname": self.hostname,
            "taken": format_time(self.taken),
            "platform": self.platform,
            "collector": self.collector,
            "netns": self.netns,
            "process_detail": self.process_detail,
            "notes": list(self.notes),
            "addresses": [a.to_dict() for a in self.addresses],
            "sockets": [s.to_dict() for s in self.sockets],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Inventory:
        if not isinstance(d, Mapping) or d.get("kind") != INVENTORY_KIND:
            raise DataError("not a portscope inventory (expected \"kind\": "
                            f"\"{INVENTORY_KIND}\"; make one with 'portscope local --json FILE')")
        v = _int(d.get("schema_version", 1), "schema_version", lo=1)
        if v is not None and v > INVENTORY_SCHEMA_VERSION:
            raise DataError(f"inventory has schema_version {v}; this portscope reads <= "
                            f"{INVENTORY_SCHEMA_VERSION}: upgrade portscope")
        detail = str(_str(d.get("process_detail") or "full", "process_detail"))
        if detail not in ("full", "partial", "none"):
            raise DataError(f"process_detail: {detail!r} is not one of full, partial, none")
        return cls(
            hostname=str(_str(d.get("hostname") or "", "hostname")),
            taken=parse_time(d.get("taken"), "taken") or utcnow(),
            platform=str(_str(d.get("platform") or "", "platform")),
            collector=str(_str(d.get("collector") or "", "collector")),
            netns=_str(d.get("netns"), "netns", optional=True),
            process_detail=detail,
            notes=_strs(d.get("notes"), "notes"),
            addresses=tuple(LocalAddress.from_dict(_mapping(a, "addresses"), "address")
                            for a in _list(d.get("addresses"), "addresses")),
            sockets=tuple(ListeningSocket.from_dict(_mapping(s, "sockets"), "socket")
                          for s in _list(d.get("sockets"), "sockets")),
        )


# --------------------------------------------------------------------------------------
# comparison


@dataclass(frozen=True, slots=True)
class Risk:
    """A risk level for an exposed port, from the audit's knowledge base."""

    severity: Severity
    title: str = ""
    reason: str = ""
    remediation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "title": self.title, "reason": self.reason,
                "remediation": self.remediation}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "risk") -> Risk:
        return cls(
            severity=_enum(Severity, _req(d, "severity", where), f"{where}.severity"),
            title=str(_str(d.get("title") or "", f"{where}.title")),
            reason=str(_str(d.get("reason") or "", f"{where}.reason")),
            remediation=str(_str(d.get("remediation") or "", f"{where}.remediation")),
        )


@dataclass(frozen=True, slots=True)
class ComparedPort:
    """One verdict: a port at one scanned address (``address`` None for a socket that
    no scanned address reaches), with the local sockets behind it and what the scan saw.

    ``why`` is a code from a fixed vocabulary (docs/local.md) that says which rule
    decided the class; the advice and explanations are rendered from it per language.
    """

    exposure: Exposure
    protocol: Protocol
    port: int
    why: str
    address: str | None = None
    outside_state: PortState | None = None
    outside_reason: str | None = None
    service: str | None = None
    sockets: tuple[ListeningSocket, ...] = ()
    risk: Risk | None = None
    hints: tuple[str, ...] = ()  # extra codes: "loopback-listener-same-port" ...

    @property
    def key(self) -> tuple[str, int]:
        return (self.protocol.value, self.port)

    def sort_key(self) -> tuple[Any, ...]:
        sev = -(self.risk.severity.rank if self.risk else -1)
        addr = self.address or ""
        return (self.exposure.rank, sev, addr, self.protocol.value, self.port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.exposure.value,
            "protocol": self.protocol.value,
            "port": self.port,
            "address": self.address,
            "why": self.why,
            "hints": list(self.hints),
            "outside": {"state": self.outside_state.value, "reason": self.outside_reason}
            if self.outside_state is not None else None,
            "service": self.service,
            "risk": self.risk.to_dict() if self.risk else None,
            "sockets": [s.to_dict() for s in self.sockets],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "entry") -> ComparedPort:
        outside = d.get("outside")
        out = _mapping(outside, f"{where}.outside") if outside is not None else None
        addr = _str(d.get("address"), f"{where}.address", optional=True)
        risk = d.get("risk")
        return cls(
            exposure=_enum(Exposure, _req(d, "class", where), f"{where}.class"),
            protocol=_enum(Protocol, _req(d, "protocol", where), f"{where}.protocol"),
            port=int(_int(_req(d, "port", where), f"{where}.port", lo=0, hi=65535) or 0),
            why=str(_str(d.get("why") or "", f"{where}.why")),
            hints=_strs(d.get("hints"), f"{where}.hints"),
            address=canonical_address(addr) if addr else None,
            outside_state=_enum(PortState, _req(out, "state", f"{where}.outside"),
                                f"{where}.outside.state") if out is not None else None,
            outside_reason=_str(out.get("reason"), f"{where}.outside.reason", optional=True)
            if out is not None else None,
            service=_str(d.get("service"), f"{where}.service", optional=True),
            risk=Risk.from_dict(_mapping(risk, f"{where}.risk"), f"{where}.risk")
            if risk is not None else None,
            sockets=tuple(ListeningSocket.from_dict(_mapping(s, f"{where}.sockets"),
                                                    f"{where} socket")
                          for s in _list(d.get("sockets"), f"{where}.sockets")),
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """The inside/outside comparison of one host: every port with its class.

    ``addresses`` are the scanned addresses compared; ``translated`` lists those that
    are not addresses of the host itself (NAT in between: specific binds are then matched
    by port only). ``notes`` are codes (docs/local.md) with ``{...}`` parameters in
    ``note_args``, rendered per language by :mod:`portscope.local.advice`.
    """

    hostname: str
    inventory_taken: datetime
    scan_id: str
    scan_started: datetime | None
    vantage: str
    addresses: tuple[str, ...]
    entries: tuple[ComparedPort, ...] = ()
    translated: tuple[str, ...] = ()
    ports_spec: str = ""
    notes: tuple[str, ...] = ()
    note_args: Mapping[str, str] = field(default_factory=dict)
    risk_source: str | None = None  # None: no knowledge base was available
    lang: str = "en"

    def of(self, *classes: Exposure) -> list[ComparedPort]:
        return [e for e in self.entries if e.exposure in classes]

    def counts(self) -> dict[str, int]:
        out = {c.value: 0 for c in _EXPOSURE_ORDER}
        for e in self.entries:
            out[e.exposure.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": COMPARISON_KIND,
            "schema_version": INVENTORY_SCHEMA_VERSION,
            "hostname": self.hostname,
            "inventory_taken": format_time(self.inventory_taken),
            "scan": {"id": self.scan_id, "started": format_time(self.scan_started),
                     "vantage": self.vantage, "ports_spec": self.ports_spec},
            "addresses": list(self.addresses),
            "translated": list(self.translated),
            "lang": self.lang,
            "risk_source": self.risk_source,
            "counts": self.counts(),
            "notes": list(self.notes),
            "note_args": dict(self.note_args),
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        if not isinstance(d, Mapping) or d.get("kind") != COMPARISON_KIND:
            raise DataError(f"not a portscope comparison (expected \"kind\": "
                            f"\"{COMPARISON_KIND}\")")
        scan = _mapping(d.get("scan"), "scan")
        return cls(
            hostname=str(_str(d.get("hostname") or "", "hostname")),
            inventory_taken=parse_time(d.get("inventory_taken"), "inventory_taken") or utcnow(),
            scan_id=str(_str(scan.get("id") or "", "scan.id")),
            scan_started=parse_time(scan.get("started"), "scan.started"),
            vantage=str(_str(scan.get("vantage") or "", "scan.vantage")),
            ports_spec=str(_str(scan.get("ports_spec") or "", "scan.ports_spec")),
            addresses=tuple(canonical_address(a) for a in _strs(d.get("addresses"),
                                                                  "addresses")),
            translated=tuple(canonical_address(a) for a in _strs(d.get("translated"),
                                                                   "translated")),
            lang=str(_str(d.get("lang") or "en", "lang")),
            risk_source=_str(d.get("risk_source"), "risk_source", optional=True),
            notes=_strs(d.get("notes"), "notes"),
            note_args={str(k): str(v) for k, v in _mapping(d.get("note_args"),
                                                          "note_args").items()},
            entries=tuple(ComparedPort.from_dict(_mapping(e, "entries"), "entry")
                          for e in _list(d.get("entries"), "entries")),
        )
