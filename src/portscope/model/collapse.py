"""Collapsing the dominant port states into ``extraports`` and expanding them back.

In memory a scan holds every port it decided. Output formats list the interesting
ports one by one and summarise large groups (like nmap's "Not shown: 65480 closed
tcp ports (conn-refused)"), but always with the exact port list, so nothing is lost
but the reply TTLs of the summarised ports:
``expand_host(collapse_host(h)) == h`` up to port order and those TTLs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from portscope.model.core import (
    ExtraPorts,
    ExtraReason,
    Host,
    PortResult,
    PortState,
    Protocol,
    sort_ports,
)

DEFAULT_COLLAPSE_THRESHOLD = 25
"""A state group with more ports than this is summarised (nmap uses 25 too)."""

# states that are never collapsed: what a user is looking for
_NEVER_COLLAPSE = frozenset({PortState.OPEN})


def format_port_list(ports: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    items = sorted(set(ports))
    if not items:
        return ""
    out: list[str] = []
    it = iter(items)
    start = prev = next(it)
    for x in it:
        if x != prev + 1:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = x
        prev = x
    out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)


def iter_port_list(text: str) -> Iterator[int]:
    """Inverse of :func:`format_port_list` (no names, no protocols)."""
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            yield from range(int(a), int(b) + 1)
        else:
            yield int(part)


def collapse_host(host: Host, threshold: int = DEFAULT_COLLAPSE_THRESHOLD) -> Host:
    """Move every state group larger than *threshold* (except open ports, and ports that
    carry a service) into ``extraports``. Collapsed ports keep state, reason and port
    number; their reply TTL is dropped (as in nmap's <extraports>)."""
    if threshold < 0:
        return host
    keep, extras = collapse_ports(host.ports, threshold, lambda p: p.service is not None)
    return replace(host, ports=tuple(sort_ports(keep)), extraports=(*host.extraports, *extras))


def collapse_ports(ports: Iterable[PortResult], threshold: int,
                   listed: Callable[[PortResult], bool]
                   ) -> tuple[list[PortResult], list[ExtraPorts]]:
    """The ports that stay listed, and one ``ExtraPorts`` per state group larger than
    *threshold* for the rest (open ports and those *listed* says must stay are never
    summarised). One pass over the ports and one per summarised group: it runs on every
    report of a 65,535-port scan."""
    groups: dict[PortState, list[PortResult]] = defaultdict(list)
    for p in ports:
        groups[p.state].append(p)
    keep: list[PortResult] = []
    extras: list[ExtraPorts] = []
    for state, members in groups.items():
        if state in _NEVER_COLLAPSE or len(members) <= threshold:
            keep.extend(members)
            continue
        stay = [p for p in members if p.service is not None and listed(p)]
        if len(members) - len(stay) <= threshold:
            keep.extend(members)
            continue
        keep.extend(stay)
        by_reason: dict[tuple[str, Protocol], list[int]] = defaultdict(list)
        if stay:
            for p in members:
                if p.service is None or not listed(p):
                    by_reason[(p.reason, p.protocol)].append(p.port)
        else:
            for p in members:
                by_reason[(p.reason, p.protocol)].append(p.port)
        reasons = tuple(
            ExtraReason(reason=r, count=len(nums), protocol=proto, ports=format_port_list(nums))
            for (r, proto), nums in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        )
        extras.append(ExtraPorts(state=state, count=len(members) - len(stay), reasons=reasons))
    return keep, extras


def expand_host(host: Host) -> Host:
    """Turn ``extraports`` back into individual :class:`PortResult` entries."""
    if not host.extraports:
        return host
    ports = list(host.ports)
    for group in host.extraports:
        for r in group.reasons:
            ports.extend(
                PortResult(port=n, protocol=r.protocol, state=group.state, reason=r.reason)
                for n in iter_port_list(r.ports)
            )
    return replace(host, ports=tuple(sort_ports(ports)), extraports=())
