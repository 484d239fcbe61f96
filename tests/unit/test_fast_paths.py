"""The hot-path shortcuts of a -p- scan give exactly what the plain code gives: the
batched permutation walk, the fast PortResult constructor, and the one-pass collapse
behind every report (against the straightforward reference implementations here)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace

import pytest

from portscope.model import (
    ExtraPorts,
    ExtraReason,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    Service,
    collapse_host,
    format_port_list,
    iter_port_list,
)
from portscope.model.core import fast_port_result
from portscope.report._common import display_host
from portscope.targets import PortSpec, ProbeSpace, parse_targets
from portscope.targets.permutation import Permutation, Probe


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 65535, 65535 * 3 + 1])
def test_batched_permutation_equals_per_index(n: int) -> None:
    p = Permutation(n, 0xC0FFEE)
    assert p.map(range(n)) == [p[i] for i in range(n)]
    assert p.map(range(1, n, 3)) == [p[i] for i in range(1, n, 3)]


def test_batched_map_rejects_out_of_range() -> None:
    with pytest.raises(IndexError):
        Permutation(10, 1).map(range(5, 11))


@pytest.mark.parametrize("shard", [(0, 1), (1, 3)])
def test_walk_equals_reference_walk(shard: tuple[int, int]) -> None:
    space = ProbeSpace(parse_targets(["198.18.0.0/30", "2001:db8::1"]),
                       PortSpec(tcp=(22, 80, 443), udp=(53, 161)), seed=42)
    k, n = shard
    ref = []
    for i in range(k, space.size, n):  # the walk's definition, one index at a time
        addr, proto, port = space.decode(space._perm[i] if space._perm else i)
        if addr is not None:
            ref.append(Probe(i, addr, proto, port))
    got = list(space.walk(shard=shard))
    assert got == ref
    assert all(type(p) is Probe and p.address == r.address for p, r in zip(got, ref, strict=True))
    assert list(space.walk(start=7, shard=shard)) == [p for p in ref if p.position >= 7]


def test_fast_port_result_is_a_port_result() -> None:
    a = fast_port_result(443, Protocol.TCP, PortState.CLOSED, "reset", 64)
    b = PortResult(443, Protocol.TCP, PortState.CLOSED, "reset", 64)
    assert type(a) is PortResult
    assert a == b and hash(a) == hash(b) and a.service is None
    with pytest.raises(AttributeError):
        a.port = 1  # type: ignore[misc]


# the collapse as it was written first (kept as the reference): copy every port without
# TTL and port-table guess, collapse, then look the originals up and merge per state
def _ref_collapse(host: Host, threshold: int) -> Host:
    if threshold < 0:
        return host
    groups: dict[PortState, list[PortResult]] = defaultdict(list)
    for p in host.ports:
        groups[p.state].append(p)
    keep: list[PortResult] = []
    extras = list(host.extraports)
    for state, ports in groups.items():
        collapsible = [p for p in ports if p.service is None]
        if state is PortState.OPEN or len(ports) <= threshold or len(collapsible) <= threshold:
            keep.extend(ports)
            continue
        keep.extend(p for p in ports if p.service is not None)
        by_reason: dict[tuple[str, Protocol], list[int]] = defaultdict(list)
        for p in collapsible:
            by_reason[(p.reason, p.protocol)].append(p.port)
        reasons = tuple(
            ExtraReason(reason=r, count=len(nums), protocol=proto, ports=format_port_list(nums))
            for (r, proto), nums in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])))
        extras.append(ExtraPorts(state=state, count=len(collapsible), reasons=reasons))
    keep.sort(key=lambda p: (p.protocol.value, p.port))
    return replace(host, ports=tuple(keep), extraports=tuple(extras))


def _ref_display(host: Host, threshold: int) -> Host:
    def strip(p: PortResult) -> PortResult:
        if p.state is PortState.OPEN or (p.service is not None and p.service.detected):
            return p
        return PortResult(p.port, p.protocol, p.state, p.reason)

    originals = {p.key: p for p in host.ports}
    collapsed = _ref_collapse(replace(host, ports=tuple(strip(p) for p in host.ports)),
                              threshold)
    by_state: dict[PortState, tuple[int, dict[tuple[str, Protocol], list[int]]]] = {}
    for g in collapsed.extraports:
        count, reasons = by_state.setdefault(g.state, (0, {}))
        for r in g.reasons:
            reasons.setdefault((r.reason, r.protocol), []).extend(iter_port_list(r.ports))
        by_state[g.state] = (count + g.count, reasons)
    merged = []
    for state, (count, reasons) in by_state.items():
        items = sorted((ExtraReason(reason=r, count=len(set(nums)), protocol=proto,
                                    ports=format_port_list(nums))
                        for (r, proto), nums in reasons.items()),
                       key=lambda e: (-e.count, e.protocol.value, e.reason))
        merged.append(ExtraPorts(state=state, count=count, reasons=tuple(items)))
    merged.sort(key=lambda g: -g.count)
    ports = sorted((originals[p.key] for p in collapsed.ports),
                   key=lambda p: (p.protocol.value, p.port))
    return replace(collapsed, ports=tuple(ports), extraports=tuple(merged))


def _random_host(rng: random.Random) -> Host:
    ports, used = [], set()
    for _ in range(rng.choice([0, 5, 30, 60, 200])):
        proto, port = rng.choice([Protocol.TCP, Protocol.UDP]), rng.randrange(1, 400)
        if (proto, port) in used:
            continue
        used.add((proto, port))
        r = rng.random()
        svc = Service(name="x", method="probed", confidence=10) if r < 0.1 else \
            Service(name="y") if r < 0.2 else None
        ports.append(PortResult(port, proto, rng.choice(list(PortState)),
                                rng.choice(["reset", "no-response", "host-prohibited"]),
                                rng.choice([None, 64]), svc))
    extra = (ExtraPorts(state=PortState.CLOSED, count=3, reasons=(
        ExtraReason("reset", 3, Protocol.TCP, "500-502"),)),) if rng.random() < 0.2 else ()
    return Host(address="198.18.0.2", status=HostStatus.UP, reason="user-set",
                ports=tuple(ports), extraports=extra)


def test_collapse_and_display_equal_the_reference() -> None:
    rng = random.Random(1)
    for _ in range(1500):
        host = _random_host(rng)
        threshold = rng.choice([-1, 0, 3, 25])
        assert collapse_host(host, threshold) == _ref_collapse(host, threshold)
        assert display_host(host, threshold) == _ref_display(host, threshold)


def test_format_port_list() -> None:
    rng = random.Random(2)
    assert format_port_list([]) == ""
    assert format_port_list([7, 1, 2, 3, 3]) == "1-3,7"
    for _ in range(300):
        nums = rng.sample(range(1, 200), rng.randrange(0, 60))
        assert sorted(iter_port_list(format_port_list(nums))) == sorted(nums)


def test_collapse_memo_serves_both_predicates() -> None:
    # one host collapsed for JSON (any service stays listed) and then for display (only a
    # detected one does): the shared grouping must not leak one predicate into the other
    guessed = Service(name="http")  # a port-table guess
    ports = tuple(PortResult(p, Protocol.TCP, PortState.CLOSED, "reset", 64,
                             guessed if p == 80 else None) for p in range(1, 200))
    host = Host(address="198.18.0.2", status=HostStatus.UP, reason="user-set", ports=ports)
    for _ in range(2):
        assert collapse_host(host) == _ref_collapse(host, 25)
        assert display_host(host) == _ref_display(host, 25)
        assert [p.port for p in collapse_host(host).ports] == [80]
        assert display_host(host).ports == ()


@pytest.mark.parametrize("n", [10, 3000])  # below and above the table's threshold
def test_sort_ports_equals_the_plain_sort(n: int) -> None:
    rng = random.Random(n)
    ports = [PortResult(p, Protocol.TCP, PortState.CLOSED, "reset", 64)
             for p in rng.sample(range(0, 65536), n)]
    ports += [PortResult(p, Protocol.UDP, PortState.OPEN_FILTERED, "no-response")
              for p in rng.sample(range(0, 65536), n // 2)]
    rng.shuffle(ports)

    def ref(ps: list[PortResult]) -> list[PortResult]:
        return sorted(ps, key=lambda p: (p.protocol.value, p.port))

    from portscope.model import sort_ports

    assert sort_ports(ports) == ref(ports)
    assert sort_ports(iter(ports)) == ref(ports)
    twice = [*ports, ports[0]]  # the same port twice falls back to sorting
    assert sort_ports(twice) == ref(twice)
