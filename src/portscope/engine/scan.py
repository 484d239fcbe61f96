"""Runs a whole scan: host discovery, the port scan(s), results into a ScanRun.

Engines are chosen per scan type through ``ENGINES`` (flag -> factory); every
decided port is streamed to the ``on_port`` callback the moment it is known, so
outputs and the store see results as they arrive and an interrupted scan keeps
them.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol as TypingProtocol

from portscope.engine.connect import ConnectEngine, EngineStats, is_loopback
from portscope.engine.timing import Timing, template
from portscope.model import (
    Host,
    HostStatus,
    PortResult,
    PortState,
    Reason,
    ScanRun,
    Service,
    Stats,
    address_key,
    utcnow,
)
from portscope.probes import get as get_scan_type
from portscope.targets import PortSpec, ProbeSpace, TargetSet, parse_targets, service_db
from portscope.targets.permutation import Probe
from portscope.targets.safety import check_targets

PortCallback = Callable[[str, PortResult], None]
HostCallback = Callable[[Host], None]


class Engine(TypingProtocol):
    stats: EngineStats

    def run(self) -> EngineStats: ...
    def stop(self) -> None: ...
    def rtt_of(self, address: str) -> float | None: ...


EngineFactory = Callable[[Iterator[Probe], Timing, PortCallback], Engine]


def _connect_factory(probes: Iterator[Probe], timing: Timing, cb: PortCallback) -> Engine:
    return ConnectEngine(probes, timing, cb)


ENGINES: dict[str, EngineFactory] = {
    "T": _connect_factory,
}
"""Scan-type flag -> engine factory. Raw engines register here too."""

DISCOVERY_PORTS = (80, 443)  # unprivileged discovery, like nmap without root


def new_run_id(now: datetime | None = None) -> str:
    t = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return f"{t}-{secrets.token_hex(3)}"


def vantage() -> str:
    return f"{socket.gethostname()} (pid {os.getpid()})"


@dataclass
class ScanOptions:
    ports: PortSpec
    scan_types: tuple[str, ...] = ("T",)
    timing: Timing = field(default_factory=lambda: template(3))
    seed: int | None = None
    skip_discovery: bool = False
    discovery_only: bool = False
    randomize: bool = True
    shard: tuple[int, int] = (0, 1)
    command: str = ""
    run_id: str | None = None


@dataclass
class Scanner:
    targets: TargetSet
    options: ScanOptions
    on_port: PortCallback | None = None
    on_host: HostCallback | None = None
    on_start: Callable[[ScanRun], None] | None = None
    on_phase: Callable[[str, int], None] | None = None  # (phase name, probes expected)

    def __post_init__(self) -> None:
        check_targets(self.targets)  # PORTSCOPE_SAFETY_ALLOW, before anything is sent
        self._engine: Engine | None = None
        self._stopped = False
        self._ports: dict[str, list[PortResult]] = {}
        self._status: dict[str, tuple[HostStatus, str]] = {}
        self._rtt: dict[str, float] = {}
        self.seed = self.options.seed if self.options.seed is not None else secrets.randbits(32)
        self.stats = Stats()
        started = utcnow()
        self.run_header = ScanRun(
            id=self.options.run_id or new_run_id(started),
            started=started,
            command=self.options.command,
            scan_types=tuple(get_scan_type(f).name for f in self.options.scan_types),
            ports_spec=self.options.ports.canonical(),
            targets=self.targets.specs,
            vantage=vantage(),
            complete=False,
            extra={"seed": self.seed, "timing": self.options.timing.name,
                   "shard": list(self.options.shard)},
        )

    # -- control --------------------------------------------------------------------
    def stop(self) -> None:
        self._stopped = True
        if self._engine is not None:
            self._engine.stop()

    # -- phases ---------------------------------------------------------------------
    def _discover(self) -> list[str]:
        """Host discovery: which targets answer at all. Returns the live addresses."""
        opts = self.options
        live: list[str] = []
        probe_targets: list[str] = []
        for addr in self.targets:
            if opts.skip_discovery:
                self._status[addr] = (HostStatus.UP, Reason.USER_SET)
                live.append(addr)
            elif is_loopback(addr):
                self._status[addr] = (HostStatus.UP, Reason.LOCALHOST_RESPONSE)
                live.append(addr)
            else:
                probe_targets.append(addr)
        if not probe_targets or self._stopped:
            return live
        answered: dict[str, str] = {}

        def cb(address: str, result: PortResult) -> None:
            if result.reason in (Reason.SYN_ACK, Reason.CONN_REFUSED):
                answered.setdefault(address, result.reason)

        space = ProbeSpace(parse_targets(probe_targets), PortSpec(tcp=DISCOVERY_PORTS),
                           seed=self.seed, randomize=opts.randomize)
        if self.on_phase:
            self.on_phase("discovery", space.size)
        engine = ConnectEngine(space.walk(), opts.timing, cb)
        engine.min_tries = 2
        self._engine = engine
        engine.run()
        self._add_stats(engine.stats)
        for addr in probe_targets:
            if addr in answered:
                self._status[addr] = (HostStatus.UP, answered[addr])
                rtt = engine.rtt_of(addr)
                if rtt is not None:
                    self._rtt[addr] = rtt
                live.append(addr)
            else:
                self._status[addr] = (HostStatus.DOWN, Reason.NO_RESPONSE)
        return live

    def _add_stats(self, s: EngineStats) -> None:
        self.stats = replace(
            self.stats,
            probes_sent=self.stats.probes_sent + s.probes_sent,
            replies=self.stats.replies + s.replies,
            retransmissions=self.stats.retransmissions + s.retransmissions,
        )

    def _record(self, address: str, result: PortResult) -> None:
        if result.state is PortState.OPEN and result.service is None:
            name = service_db().name(result.port, result.protocol.value)
            if name:
                result = replace(result, service=Service(name=name))
        self._ports.setdefault(address, []).append(result)
        if self.on_port:
            self.on_port(address, result)

    def run(self) -> ScanRun:
        opts = self.options
        t0 = time.monotonic()
        if self.on_start:
            self.on_start(self.run_header)
        live = self._discover()
        if live and not opts.discovery_only and not self._stopped:
            live_set = parse_targets(live)
            for flag in opts.scan_types:
                if self._stopped:
                    break
                st = get_scan_type(flag)
                ports = PortSpec(tcp=opts.ports.tcp) if st.protocol == "tcp" else \
                    PortSpec(udp=opts.ports.udp)
                if not ports:
                    continue
                space = ProbeSpace(live_set, ports, seed=self.seed, randomize=opts.randomize)
                if self.on_phase:
                    self.on_phase(st.name, space.size // max(opts.shard[1], 1))
                factory = ENGINES.get(flag)
                if factory is None:
                    raise NotImplementedError(f"no engine for -s{flag}")
                engine = factory(space.walk(shard=opts.shard), opts.timing, self._record)
                self._engine = engine
                engine.run()
                self._add_stats(engine.stats)
                for addr in live:
                    rtt = engine.rtt_of(addr)
                    if rtt is not None and addr not in self._rtt:
                        self._rtt[addr] = rtt
        return self.result(complete=not self._stopped, duration=time.monotonic() - t0)

    def result(self, *, complete: bool, duration: float) -> ScanRun:
        hosts = []
        for addr, (status, reason) in self._status.items():
            ports = sorted(self._ports.get(addr, []), key=lambda p: (p.protocol.value, p.port))
            rtt = self._rtt.get(addr)
            host = Host(
                address=addr,
                status=status,
                reason=str(reason),
                hostnames=(self.targets.hostnames[addr],) if addr in self.targets.hostnames
                else (),
                ports=tuple(ports),
                rtt_ms=round(rtt * 1000, 3) if rtt is not None else None,
            )
            hosts.append(host)
            if self.on_host:
                self.on_host(host)
        hosts.sort(key=lambda h: address_key(h.address))
        up = sum(1 for h in hosts if h.status is HostStatus.UP)
        stats = replace(self.stats, duration_s=duration,
                        pps=self.stats.probes_sent / duration if duration > 0 else 0.0,
                        hosts_total=len(hosts), hosts_up=up)
        return replace(self.run_header, finished=utcnow(), complete=complete,
                       hosts=tuple(hosts), stats=stats)
