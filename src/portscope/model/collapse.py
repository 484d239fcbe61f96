"""Collapsing the dominant port states into ``extraports`` and expanding them back.

In memory a scan holds every port it decided. Output formats list the interesting
ports one by one and summarise large groups (like nmap's "Not shown: 65480 closed
tcp ports (conn-refused)"), but always with the exact port list, so nothing is lost
but the reply TTLs of the summarised ports:
``expand_host(collapse_host(h)) == h`` up to port order and those TTLs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

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


# The last port tuple's grouping by state, and the summaries of its groups without any
# service (those do not depend on *listed*): a scan's JSON and its terminal report collapse
# the same host one after the other, and the grouping is a pass over every port.
_memo: list[Any] = [None, None, None]


def _group_by_state(ports: Iterable[PortResult]
                    ) -> tuple[dict[PortState, tuple[list[PortResult], bool]],
                               dict[PortState, tuple[ExtraReason, ...]]]:
    if isinstance(ports, tuple) and _memo[0] is ports:
        return _memo[1], _memo[2]
    # (keyed by the state's string: an Enum member's hash is a Python-level call, and
    # this runs once per port)
    by_value: dict[str, list[PortResult]] = {}
    for p in ports:
        v = p.state._value_
        members = by_value.get(v)
        if members is None:
            members = by_value[v] = []
        members.append(p)
    groups = {PortState(v): (members, any(p.service is not None for p in members))
              for v, members in by_value.items()}
    summaries: dict[PortState, tuple[ExtraReason, ...]] = {}
    if isinstance(ports, tuple):
        _memo[:] = [ports, groups, summaries]
    return groups, summaries


def _summarise(members: Iterable[PortResult]) -> tuple[ExtraReason, ...]:
    by_reason: dict[tuple[str, Protocol], list[int]] = {}
    last_r: str | None = None
    last_p: Protocol | None = None
    nums: list[int] = []
    for p in members:
        r, pr = p.reason, p.protocol
        if r != last_r or pr is not last_p:  # runs of one (reason, protocol): one lookup
            got = by_reason.get((r, pr))
            if got is None:
                got = by_reason[(r, pr)] = []
            nums, last_r, last_p = got, r, pr
        nums.append(p.port)
    return tuple(
        ExtraReason(reason=r, count=len(nums), protocol=proto, ports=format_port_list(nums))
        for (r, proto), nums in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    )


def collapse_ports(ports: Iterable[PortResult], threshold: int,
                   listed: Callable[[PortResult], bool]
                   ) -> tuple[list[PortResult], list[ExtraPorts]]:
    """The ports that stay listed, and one ``ExtraPorts`` per state group larger than
    *threshold* for the rest (open ports and those *listed* says must stay are never
    summarised). One pass over the ports and one per summarised group: it runs on every
    report of a 65,535-port scan."""
    groups, summaries = _group_by_state(ports)
    keep: list[PortResult] = []
    extras: list[ExtraPorts] = []
    for state, (members, with_service) in groups.items():
        if state in _NEVER_COLLAPSE or len(members) <= threshold:
            keep.extend(members)
            continue
        if not with_service:  # the usual case: nothing stays, the summary is shared
            reasons = summaries.get(state)
            if reasons is None:
                reasons = summaries[state] = _summarise(members)
            extras.append(ExtraPorts(state=state, count=len(members), reasons=reasons))
            continue
        stay = [p for p in members if p.service is not None and listed(p)]
        if len(members) - len(stay) <= threshold:
            keep.extend(members)
            continue
        keep.extend(stay)
        reasons = _summarise(p for p in members if p.service is None or not listed(p))
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
