"""The inside/outside comparison: a local :class:`~portscope.model.Inventory` joined with a
:class:`~portscope.model.ScanRun` of the same host from another vantage point (pure).

For every scanned address of the host and every (protocol, port) that either a local
socket reaches or the scan found open, one :class:`~portscope.model.ComparedPort` says
which :class:`~portscope.model.Exposure` class it falls into and why; sockets that no
scanned address reaches get one entry per (protocol, port). The rules are in
docs/local.md; in short:

=====================  ================================  ===================================
local socket reaches    scan says                          class (why)
=====================  ================================  ===================================
yes                     open                               exposed (open)
yes                     filtered / closed|filtered         shielded (filtered)
yes                     closed                             closed-but-listed (closed)
yes                     open|filtered, unfiltered          undetermined (open-filtered ...)
yes                     port or protocol not scanned       not-scanned (port-/protocol-...)
no socket reaches it    open                               unexpected (no-listener)
loopback bind only      --                                 local-only (loopback)
other address/family    --                                 not-scanned (address-/family-...)
=====================  ================================  ===================================

Exposed, unexpected and undetermined ports are rated by a :class:`RiskSource` (the
audit's knowledge base through :mod:`portscope.local.risk`) when one is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Protocol as TypingProtocol

from portscope.errors import DataError, UsageError
from portscope.model import (
    BindScope,
    ComparedPort,
    Comparison,
    Exposure,
    Host,
    HostStatus,
    Inventory,
    ListeningSocket,
    PortResult,
    PortState,
    Protocol,
    Risk,
    ScanRun,
    canonical_address,
    expand_host,
    unmap,
)
from portscope.report._common import scanned_ports

TIME_GAP = timedelta(hours=1)
"""Inventory and scan further apart than this: say that they may not show the same moment."""

MIDDLEBOX_OPEN = 50
"""This many unexpected open ports at one address: something answers for every port."""


class RiskSource(TypingProtocol):
    """Rates a reachable port: see :mod:`portscope.local.risk`."""

    name: str

    def rate(self, port: int, protocol: str, service: str | None, lang: str) -> Risk | None: ...


_STATE_CLASS: dict[PortState, tuple[Exposure, str]] = {
    PortState.OPEN: (Exposure.EXPOSED, "open"),
    PortState.FILTERED: (Exposure.SHIELDED, "filtered"),
    PortState.CLOSED_FILTERED: (Exposure.SHIELDED, "closed-filtered"),
    PortState.CLOSED: (Exposure.CLOSED_BUT_LISTED, "closed"),
    PortState.OPEN_FILTERED: (Exposure.UNDETERMINED, "open-filtered"),
    PortState.UNFILTERED: (Exposure.UNDETERMINED, "unfiltered"),
}

_RATED = (Exposure.EXPOSED, Exposure.UNEXPECTED, Exposure.UNDETERMINED)


def select_hosts(inventory: Inventory, run: ScanRun,
                 addresses: Sequence[str] | None = None) -> list[tuple[Host, bool]]:
    """The scanned hosts that are this inventory's host, each with a flag saying whether
    its address is *translated* (not an address of the host: NAT in between).

    Without *addresses*: the scanned hosts whose address is one of the host's; if none
    is and the scan has exactly one host, that one (translated)."""
    if not run.hosts:
        raise DataError("the scan has no hosts to compare with")
    if addresses:
        out = []
        for a in addresses:
            try:
                want = unmap(canonical_address(a))
            except DataError:
                raise UsageError(f"--address {a!r} is not an IP address") from None
            host = next((h for h in run.hosts if unmap(h.address) == want), None)
            if host is None:
                scanned = ", ".join(h.address for h in run.hosts[:5])
                raise UsageError(f"{a} was not scanned (the scan has: {scanned})")
            out.append((host, not inventory.is_local_address(host.address)))
        return out
    local = [(h, False) for h in run.hosts if inventory.is_local_address(h.address)]
    if local:
        return local
    if len(run.hosts) == 1:
        return [(run.hosts[0], True)]
    name = inventory.hostname or "the inventory's host"
    raise UsageError(f"none of the {len(run.hosts)} scanned hosts is an address of {name}: "
                     f"say which is, with --address ADDR")


def _reaches(sock: ListeningSocket, address: str, translated: bool) -> bool:
    if sock.scope is BindScope.LOOPBACK and not ipaddress.ip_address(unmap(address)).is_loopback:
        return False
    if not translated:
        return sock.reaches(address)
    # NAT in between: the host's own addresses are unknown to the scanner; a socket
    # reaches if it takes the family (wildcard) or is bound to a non-loopback address
    # of the family (its address was translated).
    version = ipaddress.ip_address(unmap(address)).version
    if sock.scope is BindScope.ALL:
        return sock.reaches("0.0.0.0" if version == 4 else "::")
    bound = ipaddress.ip_address(unmap(sock.address))
    return bound.version == version and not bound.is_link_local


def _outside(host: Host, expanded: Mapping[tuple[str, int], PortResult],
             proto: Protocol, port: int, scope: Mapping[Protocol, set[int]]
             ) -> tuple[PortState, str] | None:
    """What the scan found at *port* (None: not scanned, or not known)."""
    hit = expanded.get((proto.value, port))
    if hit is not None:
        return hit.state, hit.reason
    if port not in scope.get(proto, set()):
        return None
    # in scope but not listed: an nmap file whose <extraports> carry no port lists
    groups = [g for g in host.extraports
              if any(r.protocol is proto for r in g.reasons) or not g.reasons]
    if len(groups) == 1:
        g = groups[0]
        return g.state, (g.reasons[0].reason if g.reasons else "")
    return None


def _service(sockets: Sequence[ListeningSocket], result: PortResult | None) -> str | None:
    if result is not None and result.service is not None and result.service.detected:
        return result.service.name
    for s in sockets:
        if s.service:
            return s.service
    if result is not None and result.service is not None:
        return result.service.name
    return None


def compare(inventory: Inventory, run: ScanRun, *, addresses: Sequence[str] | None = None,
            risk: RiskSource | None = None, lang: str = "en") -> Comparison:
    """Classify every port of *inventory*'s host against *run* (see the module doc).

    *addresses* picks the scanned addresses that belong to the host (default: those
    that are the host's own; see :func:`select_hosts`). *risk* rates reachable ports in
    *lang* (``"en"``/``"ja"``). Raises :class:`~portscope.errors.UsageError` when the
    scanned host cannot be matched with the inventory.
    """
    hosts = select_hosts(inventory, run, addresses)
    scope = {p: set(nums) for p, nums in scanned_ports(run).items()}
    entries: list[ComparedPort] = []
    notes: list[str] = []
    args: dict[str, str] = {}
    reached: set[int] = set()  # ids of sockets some scanned address reaches

    def rate(exposure: Exposure, proto: Protocol, port: int, service: str | None
             ) -> Risk | None:
        if risk is None or exposure not in _RATED:
            return None
        return risk.rate(port, proto.value, service, lang)

    for host, translated in hosts:
        address = host.address
        expanded = {p.key: p for p in expand_host(host).ports}
        covering: dict[tuple[str, int], list[ListeningSocket]] = {}
        for s in inventory.sockets:
            if _reaches(s, address, translated):
                covering.setdefault(s.key, []).append(s)
                reached.add(id(s))
        down = host.status is HostStatus.DOWN and not expanded
        if down:
            notes.append("host-down")
            args["down"] = ", ".join(filter(None, (args.get("down"), address)))
        unexpected_here = 0
        keys = set(covering) | {k for k, p in expanded.items() if p.state is PortState.OPEN}
        for key in sorted(keys, key=lambda k: (k[0], k[1])):
            proto, port = Protocol(key[0]), key[1]
            socks = tuple(covering.get(key, ()))
            result = expanded.get(key)
            seen = None if down else _outside(host, expanded, proto, port, scope)
            hints: list[str] = []
            if translated:
                hints.append("translated")
            if socks:
                if seen is None:
                    if down:
                        why = "host-down"
                    elif not scope.get(proto):
                        why = "protocol-not-scanned"
                    else:
                        why = "port-not-scanned"
                    exposure = Exposure.NOT_SCANNED
                else:
                    exposure, why = _STATE_CLASS[seen[0]]
                    if seen[0] is PortState.FILTERED and seen[1] not in ("no-response", ""):
                        hints.append("rejected")  # a firewall answered (ICMP prohibited)
            else:
                assert seen is not None and seen[0] is PortState.OPEN
                exposure, why = Exposure.UNEXPECTED, "no-listener"
                unexpected_here += 1
                for s in inventory.sockets:
                    if s.key != key:
                        continue
                    if s.scope is BindScope.LOOPBACK:
                        hints.append("loopback-listener")
                    elif s.family.value == "ipv6" and s.v6only:
                        hints.append("v6only-listener")
                    else:
                        hints.append("other-address-listener")
                hints = list(dict.fromkeys(hints))
            service = _service(socks, result)
            entries.append(ComparedPort(
                exposure=exposure, protocol=proto, port=port, why=why, address=address,
                outside_state=seen[0] if seen else None, outside_reason=seen[1] if seen else None,
                service=service, sockets=socks, risk=rate(exposure, proto, port, service),
                hints=tuple(hints)))
        if unexpected_here >= MIDDLEBOX_OPEN:
            notes.append("middlebox")
            args["middlebox"] = ", ".join(filter(None, (args.get("middlebox"), address)))

    entries.extend(_unreached(inventory, [s for s in inventory.sockets if id(s) not in reached],
                              [h.address for h, _ in hosts]))

    translated_addrs = tuple(h.address for h, t in hosts if t)
    if translated_addrs:
        notes.append("translated")
        args["translated"] = ", ".join(translated_addrs)
    if inventory.process_detail != "full":
        notes.append("process-detail-partial")
    if not run.complete:
        notes.append("scan-incomplete")
    if run.started is not None and abs(run.started - inventory.taken) > TIME_GAP:
        notes.append("time-gap")
        hours = abs(run.started - inventory.taken).total_seconds() / 3600
        args["hours"] = f"{hours:.0f}"
    if risk is None:
        notes.append("no-risk-source")
    hostname = inventory.hostname
    if inventory.netns:
        hostname = f"{hostname} (network namespace {inventory.netns})"
    return Comparison(
        hostname=hostname, inventory_taken=inventory.taken, scan_id=run.id,
        scan_started=run.started, vantage=run.vantage, ports_spec=run.ports_spec,
        addresses=tuple(h.address for h, _ in hosts), translated=translated_addrs,
        entries=tuple(sorted(entries, key=ComparedPort.sort_key)),
        notes=tuple(dict.fromkeys(notes)), note_args=args,
        risk_source=risk.name if risk is not None else None, lang=lang)


def _unreached(inventory: Inventory, sockets: Iterable[ListeningSocket],
               compared: Sequence[str]) -> list[ComparedPort]:
    """Entries for sockets no compared address reaches: loopback binds (local-only) and
    binds to addresses or a family the scan did not cover (not-scanned)."""
    versions = {ipaddress.ip_address(unmap(a)).version for a in compared}
    groups: dict[tuple[Exposure, str, str, int], list[ListeningSocket]] = {}
    for s in sockets:
        bound = ipaddress.ip_address(unmap(s.address))
        if s.scope is BindScope.LOOPBACK:
            exposure, why = Exposure.LOCAL_ONLY, "loopback"
        elif s.scope is BindScope.ALL and bound.version not in versions:
            exposure, why = Exposure.NOT_SCANNED, "family-not-scanned"
        elif bound.is_link_local:
            exposure, why = Exposure.NOT_SCANNED, "link-local"
        else:
            exposure, why = Exposure.NOT_SCANNED, "address-not-scanned"
        groups.setdefault((exposure, why, s.protocol.value, s.port), []).append(s)
    return [ComparedPort(exposure=exposure, protocol=Protocol(proto), port=port, why=why,
                         service=next((s.service for s in socks if s.service), None),
                         sockets=tuple(socks))
            for (exposure, why, proto, port), socks in groups.items()]
