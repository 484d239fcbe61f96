"""The connect engine against listeners this test opens on 127.0.0.1 (and ports it
bound and released, so they are known to be closed)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from portscope.engine.connect import ConnectEngine
from portscope.engine.timing import template
from portscope.model import PortResult, PortState
from portscope.targets import PortSpec, ProbeSpace, parse_targets


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    socks = []
    for _ in range(5):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


@pytest.fixture
def closed_ports() -> list[int]:
    ports = []
    holders = []
    for _ in range(20):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        holders.append(s)
        ports.append(s.getsockname()[1])
    for s in holders:
        s.close()
    return ports


def scan(ports: list[int], **kw: object) -> dict[int, PortResult]:
    results: dict[int, PortResult] = {}

    def cb(address: str, r: PortResult) -> None:
        assert address == "127.0.0.1"
        assert r.port not in results, "a port decided twice"
        results[r.port] = r

    space = ProbeSpace(parse_targets(["127.0.0.1"]), PortSpec(tcp=tuple(sorted(ports))), seed=1)
    engine = ConnectEngine(space.walk(), template(4), cb, **kw)  # type: ignore[arg-type]
    stats = engine.run()
    assert stats.results == len(ports)
    return results


def test_open_and_closed(listeners: list[int], closed_ports: list[int]) -> None:
    res = scan(listeners + closed_ports)
    for p in listeners:
        assert res[p].state is PortState.OPEN and res[p].reason == "syn-ack"
    for p in closed_ports:
        assert res[p].state is PortState.CLOSED and res[p].reason == "conn-refused"


def test_small_window_still_scans_everything(listeners: list[int],
                                             closed_ports: list[int]) -> None:
    t = template(4).with_overrides(max_parallel=2)
    results: dict[int, PortResult] = {}
    space = ProbeSpace(parse_targets(["127.0.0.1"]),
                       PortSpec(tcp=tuple(sorted(listeners + closed_ports))), seed=2)
    ConnectEngine(space.walk(), t,
                  lambda a, r: results.__setitem__(r.port, r)).run()
    assert {p for p, r in results.items() if r.state is PortState.OPEN} == set(listeners)


def test_rate_limit_is_respected(closed_ports: list[int]) -> None:
    import time

    t = template(4).with_overrides(max_rate=200)
    results: list[PortResult] = []
    space = ProbeSpace(parse_targets(["127.0.0.1"]), PortSpec(tcp=tuple(sorted(closed_ports))))
    t0 = time.monotonic()
    ConnectEngine(space.walk(), t, lambda a, r: results.append(r)).run()
    elapsed = time.monotonic() - t0
    assert len(results) == 20
    # 20 probes at 200/s with a burst of 4: at least ~0.08 s
    assert elapsed >= 0.07


def test_stop_ends_the_loop(closed_ports: list[int]) -> None:
    results: list[PortResult] = []
    space = ProbeSpace(parse_targets(["127.0.0.1"]), PortSpec(tcp=tuple(sorted(closed_ports))))
    engine: ConnectEngine

    def cb(a: str, r: PortResult) -> None:
        results.append(r)
        if len(results) == 3:
            engine.stop()

    engine = ConnectEngine(space.walk(), template(4).with_overrides(max_parallel=1), cb)
    engine.run()
    assert len(results) == 3
