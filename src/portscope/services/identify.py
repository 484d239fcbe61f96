"""Which protocol is this? Classify a server's first bytes, and plan the probes of a port
from its port-table name and the version intensity (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from portscope.services import PROTOCOLS
from portscope.services.base import ServiceProtocol
from portscope.services.tls import looks_like_tls

TLS = "tls"  # pseudo-protocol: a TLS handshake, then what is inside

TLS_PORTS = frozenset({443, 465, 563, 585, 636, 853, 989, 990, 992, 993, 994, 995, 1443,
                       2376, 2484, 3269, 4443, 5061, 5986, 6443, 6697, 8443, 9443, 10443})


@dataclass(frozen=True)
class Plan:
    """What to try on one port, in order."""

    hinted: str | None = None  # the protocol its port-table name stands for
    tls_first: bool = False  # the port-table name says the service is inside TLS
    probes: tuple[str, ...] = ()  # client-first probes for when nothing greets us
    udp: tuple[str, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)


def _by_hint() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    plain: dict[str, str] = {}
    tls: dict[str, str] = {}
    udp: dict[str, str] = {}
    for p in PROTOCOLS.values():
        for h in p.hints:
            plain.setdefault(h.lower(), p.name)
        for h in p.tls_hints:
            tls.setdefault(h.lower(), p.name)
        for h in p.udp_hints:
            udp.setdefault(h.lower(), p.name)
    return plain, tls, udp


HINTS, TLS_HINTS, UDP_HINTS = _by_hint()


def classify(data: bytes, hint: str | None = None) -> list[tuple[int, str]]:
    """``[(score, protocol)]`` for a server's first bytes, best first; the port-table hint
    breaks ties. ``tls`` is listed when the bytes are a TLS record."""
    if not data:
        return []
    out: list[tuple[int, str]] = []
    if looks_like_tls(data):
        out.append((8, TLS))
    for p in PROTOCOLS.values():
        if p.recognize is None:
            continue
        try:
            score = p.recognize(data)
        except Exception:
            score = 0
        if score > 0:
            out.append((score, p.name))
    hinted = HINTS.get((hint or "").lower())
    out.sort(key=lambda sp: (-sp[0], sp[1] != hinted, sp[1]))
    return out


def tcp_plan(hint: str | None, port: int, intensity: int) -> Plan:
    name = (hint or "").lower()
    hinted = HINTS.get(name) or TLS_HINTS.get(name)
    tls_first = name in TLS_HINTS or (hinted is None and port in TLS_PORTS)
    probes: list[str] = [TLS] if tls_first else []
    if hinted and not PROTOCOLS[hinted].server_first:
        probes.append(hinted)
    elif not tls_first:
        probes.append("http")  # the most common client-first service, first in line
    if TLS not in probes:
        probes.append(TLS)
    ranked = sorted((p for p in PROTOCOLS.values()
                     if p.dialog is not None and not p.server_first and p.rarity <= intensity),
                    key=lambda p: (p.rarity, p.name))
    for p in ranked:
        if p.name not in probes:
            probes.append(p.name)
    return Plan(hinted=hinted, tls_first=tls_first, probes=tuple(probes))


def udp_plan(hint: str | None, port: int, intensity: int) -> Plan:
    name = (hint or "").lower()
    hinted = UDP_HINTS.get(name)
    probes: list[str] = [hinted] if hinted else []
    ranked = sorted((p for p in PROTOCOLS.values()
                     if p.udp is not None and p.udp_rarity <= intensity),
                    key=lambda p: (p.udp_rarity, p.name))
    for p in ranked:
        if p.name not in probes:
            probes.append(p.name)
    return Plan(hinted=hinted, udp=tuple(probes))


def protocol(name: str) -> ServiceProtocol | None:
    return PROTOCOLS.get(name)
