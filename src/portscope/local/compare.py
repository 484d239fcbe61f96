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
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
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


# --------------------------------------------------------------------------------------
# the comparison in the audit (portscope audit --local / --netns / --inventory)

COMPARISON_EXTRA = "comparison"
"""``Host.extra`` key of a host's inside/outside comparison in an audited run."""


@dataclass(frozen=True)
class SourcedInventory:
    """An inventory for the audit, with where it came from and how to match it.

    *label* names it in messages and reports (``--inventory web1.json``, ``--netns
    web1``). *addresses* are the scanned addresses the user said are this host's
    (``--address``, ``ADDR=FILE``). *exact*: only a scanned address the inventory lists
    itself matches (an inventory taken now, of this machine or a namespace); otherwise a
    scan of exactly one host is taken to be this host behind NAT, as ``compare`` does.
    """

    label: str
    inventory: Inventory
    addresses: tuple[str, ...] = ()
    exact: bool = False


def assign_inventories(run: ScanRun, sources: Sequence[SourcedInventory]
                       ) -> list[tuple[SourcedInventory, list[Host]]]:
    """Which scanned hosts each inventory describes (docs/audit.md, "Inside versus outside").

    1. the addresses the user named (each must be a scanned host);
    2. else the scanned hosts whose address the inventory lists (its own addresses);
    3. else, when not *exact* and the run has exactly one host that no other inventory
       took, that host (address translation in between);
    4. else a :class:`UsageError` saying which option settles it.

    A host claimed by two inventories is an error too. Hosts no inventory describes get
    no comparison.
    """
    if not run.hosts:
        raise UsageError("the audit has no hosts to compare the local view with")
    by_addr = {unmap(h.address): h for h in run.hosts}
    scanned = ", ".join(h.address for h in run.hosts[:6]) + (" ..." if len(run.hosts) > 6 else "")
    out: list[tuple[SourcedInventory, list[Host]]] = []
    pending: list[SourcedInventory] = []
    for src in sources:
        if src.addresses:
            hosts = []
            for a in src.addresses:
                try:
                    want = unmap(canonical_address(a))
                except DataError:
                    raise UsageError(f"{src.label}: {a!r} is not an IP address") from None
                if want not in by_addr:
                    raise UsageError(f"{src.label}: {a} was not scanned (scanned: {scanned})")
                hosts.append(by_addr[want])
            out.append((src, hosts))
            continue
        own = [h for h in run.hosts if src.inventory.is_local_address(h.address)]
        if own:
            out.append((src, own))
        else:
            pending.append(src)
    taken = {id(h) for _, hs in out for h in hs}
    for src in pending:
        name = src.inventory.hostname or "its host"
        if not src.exact and len(run.hosts) == 1 and id(run.hosts[0]) not in taken:
            out.append((src, [run.hosts[0]]))
            taken.add(id(run.hosts[0]))
            continue
        if src.exact:
            hint = ("it compares the sockets of the host it was taken on with a scan of that "
                    "host: scan one of its addresses, or name the scanned address that "
                    "reaches it (NAT) with --address ADDR")
        else:
            hint = ("name the scanned address that is this host with --inventory ADDR=FILE "
                    "(or --address ADDR when there is one inventory)")
        raise UsageError(f"{src.label}: none of the {len(run.hosts)} scanned host(s) "
                         f"({scanned}) is an address of {name}; {hint}")
    seen: dict[int, str] = {}
    for src, hosts in out:
        for h in hosts:
            if id(h) in seen and seen[id(h)] != src.label:
                raise UsageError(f"{h.address} is claimed by both {seen[id(h)]} and "
                                 f"{src.label}: give each inventory its own address "
                                 "(--inventory ADDR=FILE)")
            seen[id(h)] = src.label
    return out


def comparison_document(comparison: Comparison, source: str, lang: str,
                        inventory: Inventory | None = None) -> dict[str, Any]:
    """:meth:`Comparison.to_dict` plus texts for readers of the audit's JSON: per entry
    its class ``label``, ``explanation`` (why), ``hint_texts`` and the class ``advice``;
    ``note_texts``, where the inventory came from (``source``) and what it was
    (``inventory``: hostname, netns, collector, process detail). ``Comparison.from_dict``
    reads it back (the additions are ignored)."""
    from portscope.local.advice import class_text, hint_texts, note_texts, why_text

    doc = comparison.to_dict()
    doc["source"] = source
    if inventory is not None:
        doc["inventory"] = {"hostname": inventory.hostname, "netns": inventory.netns,
                            "collector": inventory.collector,
                            "process_detail": inventory.process_detail}
    doc["note_texts"] = note_texts(comparison, lang)
    for d, e in zip(doc["entries"], comparison.entries, strict=True):
        ct = class_text(e.exposure, lang)
        d["label"] = ct.label
        d["explanation"] = why_text(e, lang)
        d["hint_texts"] = hint_texts(e, lang)
        d["advice"] = ct.advice
    return doc


def merge_into_run(run: ScanRun, sources: Sequence[SourcedInventory], *,
                   risk: RiskSource | None = None, lang: str = "en") -> ScanRun:
    """*run* with each described host's comparison in ``Host.extra["comparison"]`` (see
    :func:`assign_inventories` for which host; one :func:`compare` per scanned address)
    and a summary in ``run.extra["audit"]["comparisons"]``. The audit's ``compare``
    check turns the unexpected ports into findings."""
    assigned = assign_inventories(run, sources)
    docs: dict[int, dict[str, Any]] = {}
    summary = []
    for src, hosts in assigned:
        # one comparison over all of the inventory's scanned addresses (a socket bound
        # to the IPv6 address is not "not scanned" because the IPv4 one is another host),
        # split per host: its address's entries plus the sockets no address reaches
        whole = compare(src.inventory, run, addresses=[h.address for h in hosts],
                        risk=risk, lang=lang)
        for h in hosts:
            c = replace(whole, addresses=(h.address,),
                        translated=tuple(a for a in whole.translated if a == h.address),
                        entries=tuple(e for e in whole.entries
                                      if e.address is None or e.address == h.address))
            doc = comparison_document(c, src.label, lang, src.inventory)
            doc["also_compared"] = [x.address for x in hosts if x is not h]
            docs[id(h)] = doc
            summary.append({"address": h.address, "source": src.label,
                            "hostname": c.hostname, "counts": c.counts()})
    hosts_out = tuple(replace(h, extra={**h.extra, COMPARISON_EXTRA: docs[id(h)]})
                      if id(h) in docs else h for h in run.hosts)
    audit = dict(run.extra.get("audit") or {})
    audit["comparisons"] = summary
    return replace(run, hosts=hosts_out, extra={**run.extra, "audit": audit})


def host_name(host: Host, lang: str | None = None) -> str:
    """The compared host's name: the inventory's hostname, with its network namespace in
    *lang* (``en``/``ja``); with *lang* None the bare name that is the same in every
    language (the namespace's name when there is one, else the hostname)."""
    doc = host.extra.get(COMPARISON_EXTRA)
    inv = doc.get("inventory") if isinstance(doc, Mapping) else None
    if not isinstance(inv, Mapping):
        return str(doc.get("hostname") or host.address) if isinstance(doc, Mapping) \
            else host.address
    name, netns = str(inv.get("hostname") or ""), inv.get("netns")
    if not netns:
        return name or host.address
    if lang is None:
        return str(netns)
    if lang == "ja":
        where = f"ネットワーク名前空間 {netns}"
        return f"{name}（{where}）" if name else where
    return f"{name} (network namespace {netns})" if name else f"network namespace {netns}"


def host_comparison(host: Host) -> Comparison | None:
    """The comparison :func:`merge_into_run` left on *host* (None: none, or unreadable)."""
    doc = host.extra.get(COMPARISON_EXTRA)
    if not isinstance(doc, Mapping):
        return None
    try:
        return Comparison.from_dict(doc)
    except DataError:
        return None
