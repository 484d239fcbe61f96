"""The keyed permutation: a bijection for every size and key; shards disjoint and complete."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portscope.targets import Permutation, ProbeSpace, parse_ports, parse_targets


@given(n=st.integers(min_value=0, max_value=3000), key=st.integers(min_value=0,
                                                                   max_value=2**64 - 1))
@settings(max_examples=60, deadline=None)
def test_every_index_exactly_once(n: int, key: int) -> None:
    assert sorted(Permutation(n, key)) == list(range(n))


def test_keys_give_different_orders_and_are_deterministic() -> None:
    a = list(Permutation(1000, 1))
    assert a == list(Permutation(1000, 1))
    assert a != list(Permutation(1000, 2))
    assert a != sorted(a)  # actually shuffled


def test_probe_space_covers_every_pair_once() -> None:
    targets = parse_targets(["198.18.0.0/29", "2001:db8::/126"], exclude=["198.18.0.3"])
    ports = parse_ports("U:53,T:22,80,443", ("tcp", "udp"))
    space = ProbeSpace(targets, ports, seed=7)
    got = [(p.address, p.protocol, p.port) for p in space.walk()]
    assert len(got) == len(set(got)) == 11 * 4
    assert ("198.18.0.3", "tcp", 22) not in got
    assert {p for _, _, p in got} == {22, 53, 80, 443}


@given(n=st.integers(min_value=1, max_value=7), seed=st.integers(min_value=0, max_value=99))
@settings(max_examples=30, deadline=None)
def test_shards_are_disjoint_and_complete(n: int, seed: int) -> None:
    space = ProbeSpace(parse_targets(["198.18.0.0/28"]), parse_ports("1-20"), seed=seed)
    everything = {(p.address, p.port) for p in space.walk()}
    seen: set[tuple[str, int]] = set()
    for i in range(n):
        part = [(p.address, p.port) for p in space.walk(shard=(i, n))]
        assert not seen & set(part)
        seen |= set(part)
    assert seen == everything and len(everything) == 16 * 20


def test_resume_from_an_index_continues_the_same_walk() -> None:
    space = ProbeSpace(parse_targets(["198.18.0.0/30"]), parse_ports("1-100"), seed=3)
    full = list(space.walk())
    rest = list(space.walk(start=137))
    assert rest == full[137:]
    assert [p.position for p in rest][:3] == [137, 138, 139]


def test_sequential_order_without_randomisation() -> None:
    space = ProbeSpace(parse_targets(["198.18.0.1"]), parse_ports("1-5"), randomize=False)
    assert [p.port for p in space.walk()] == [1, 2, 3, 4, 5]
