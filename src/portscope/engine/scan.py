"""Runs a whole scan: host discovery, the port scan(s), results into a ScanRun.

Engines are chosen per scan type through ``ENGINES`` (flag -> factory); every
decided port is streamed to the ``on_port`` callback the moment it is known, so
outputs and the store see results as they arrive and an interrupted scan keeps
them.

Resume works for every engine the same way: the same seed and shard give the same
``ProbeSpace.walk()`` order, so a resumed scan walks again and skips the probes whose
result is already known; the known results are part of the final run. The decided
probes come from a state file (``engine/resume.py``, ``--resume FILE``) or from the
store (:class:`Resume`, ``--resume RUN``).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

from portscope.engine.connect import ConnectEngine, EngineStats, is_loopback
from portscope.engine.timing import TEMPLATES, Timing, template
from portscope.model import (
    Host,
    HostStatus,
    OSGuess,
    PortResult,
    PortState,
    Reason,
    ScanRun,
    Service,
    Stats,
    address_key,
    sort_ports,
    utcnow,
)
from portscope.probes import get as get_scan_type
from portscope.targets import PortSpec, ProbeSpace, TargetSet, parse_targets, service_db
from portscope.targets.permutation import Probe
from portscope.targets.safety import check_targets

if TYPE_CHECKING:  # engine.services imports the service probes (TLS, DNS ...): ~0.15 s
    from portscope.engine.services import Control, ServiceOptions

_OPEN = PortState.OPEN  # (an Enum member lookup is a Python-level descriptor call)

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


def template_level(timing: Timing) -> int:
    """The -T level a timing derives from (3 when it is not one of the templates)."""
    return next((k for k, t in TEMPLATES.items() if t.name == timing.name), 3)


def _raw_factory(flag: str) -> EngineFactory:
    def factory(probes: Iterator[Probe], timing: Timing, cb: PortCallback) -> Engine:
        from portscope.engine.raw import RawEngine

        st = get_scan_type(flag)
        payloads = None
        if st.protocol == "udp":
            from portscope.probes.udp_payloads import PayloadTable

            payloads = PayloadTable.default()
        return RawEngine(probes, timing, cb, st, level=template_level(timing),
                         payloads=payloads)

    return factory


ENGINES: dict[str, EngineFactory] = {
    "T": _connect_factory,
    **{flag: _raw_factory(flag) for flag in "SFNXAWU"},
}
"""Scan-type flag -> engine factory (connect for -sT; the raw engine for the others)."""

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
    no_fallback: bool = False  # raw scans without privileges: error instead of -sT
    state_file: str | None = None  # write decided ports here (engine/resume.py)
    resume_file: str | None = None  # continue the scan saved in this state file
    services: ServiceOptions | None = None  # -sV: service and version detection
    os_detection: bool = False  # -O: OS fingerprinting (raw packets)
    arp_ping: bool = True  # on-link targets: ARP/ND discovery (off: --disable-arp-ping)


@dataclass
class Resume:
    """A stored run to complete (``portscope scan --resume RUN``): its header (id,
    started, command ...), the probes it decided (``(address, protocol, port)``), their
    results per address and the hosts known to be up (address -> reason)."""

    run: ScanRun
    decided: Container[tuple[str, str, int]]
    results: Mapping[str, Sequence[PortResult]]
    live: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Scanner:
    targets: TargetSet
    options: ScanOptions
    on_port: PortCallback | None = None
    on_host: HostCallback | None = None
    on_start: Callable[[ScanRun], None] | None = None
    on_phase: Callable[[str, int], None] | None = None  # (phase name, probes expected)
    on_warning: Callable[[str], None] | None = None
    on_service: PortCallback | None = None  # a port again, with what answers there (-sV)
    resume: Resume | None = None  # a stored run to complete

    def __post_init__(self) -> None:
        check_targets(self.targets)  # PORTSCOPE_SAFETY_ALLOW, before anything is sent
        self.warnings: list[str] = []
        self._resume = None
        if self.options.resume_file:
            from portscope.engine.resume import read_state

            self._resume = read_state(self.options.resume_file)
            self.options = replace(self.options, seed=self._resume.seed,
                                   shard=tuple(self._resume.header.get("shard", (0, 1))))
        self.raw_ok = self._raw_privileges()
        self.scan_flags = self._effective_flags()
        self._engine: Engine | None = None
        self._detection: Control | None = None
        self._os: dict[str, OSGuess] = {}
        self._stopped = False
        self._ports: dict[str, list[PortResult]] = {}
        self._status: dict[str, tuple[HostStatus, str]] = {}
        self._rtt: dict[str, float] = {}
        self._mac: dict[str, str] = {}
        self.seed = self.options.seed if self.options.seed is not None else secrets.randbits(32)
        self.stats = Stats()
        started = utcnow()
        self.run_header = ScanRun(
            id=self.options.run_id or new_run_id(started),
            started=started,
            command=self.options.command,
            scan_types=tuple(get_scan_type(f).name for f in self.scan_flags),
            ports_spec=self.options.ports.canonical(),
            targets=self.targets.specs,
            vantage=vantage(),
            complete=False,
            extra={"seed": self.seed, "timing": self.options.timing.name,
                   "shard": list(self.options.shard)},
        )
        if self.resume is not None:
            prev = self.resume.run
            self.run_header = replace(self.run_header, id=prev.id, started=prev.started,
                                      command=prev.command or self.run_header.command,
                                      extra={**prev.extra, **self.run_header.extra,
                                             "resumed": [*prev.extra.get("resumed", []),
                                                         started.isoformat()]})
            for addr, results in self.resume.results.items():
                self._ports[addr] = list(results)

    @staticmethod
    def _raw_privileges() -> bool:
        from portscope.engine.rawsock import raw_available

        return raw_available() is None

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.on_warning:
            self.on_warning(text)

    def _effective_flags(self) -> tuple[str, ...]:
        """The scan types to run: raw ones fall back (-sS -> -sT) without privileges,
        or fail with --no-fallback."""
        from portscope.engine.rawsock import CAPABILITY_HELP
        from portscope.errors import PermissionProblem

        out: list[str] = []
        for flag in self.options.scan_types:
            st = get_scan_type(flag)
            if st.needs_root and not self.raw_ok:
                if st.fallback and not self.options.no_fallback:
                    self._warn(f"-s{flag} ({st.name}) needs raw sockets: using -s{st.fallback} "
                               f"instead. {CAPABILITY_HELP}")
                    if st.fallback not in out:
                        out.append(st.fallback)
                    continue
                raise PermissionProblem(f"-s{flag} ({st.name} scan): {CAPABILITY_HELP}")
            if flag not in out:
                out.append(flag)
        return tuple(out)

    # -- control --------------------------------------------------------------------
    def stop(self) -> None:
        self._stopped = True
        if self._engine is not None:
            self._engine.stop()
        if self._detection is not None:
            self._detection.stop()

    # -- phases ---------------------------------------------------------------------
    def _discover(self) -> list[str]:
        """Host discovery: which targets answer at all. Returns the live addresses."""
        opts = self.options
        live: list[str] = []
        probe_targets: list[str] = []
        known = self.resume.live if self.resume is not None else {}
        # -Pn: like nmap, on-link targets are still asked by ARP/ND (a host that does not
        # answer ARP cannot be reached at all); the others are taken as up
        arp_under_pn = self.raw_ok and opts.arp_ping
        for addr in self.targets:
            if addr in known:  # up in the run being resumed
                self._status[addr] = (HostStatus.UP, known[addr])
                live.append(addr)
            elif opts.skip_discovery and (not arp_under_pn or is_loopback(addr)):
                self._status[addr] = (HostStatus.UP, Reason.USER_SET)
                live.append(addr)
            elif is_loopback(addr):
                self._status[addr] = (HostStatus.UP, Reason.LOCALHOST_RESPONSE)
                live.append(addr)
            else:
                probe_targets.append(addr)
        if not probe_targets or self._stopped:
            return live
        if self.raw_ok:
            return live + self._discover_raw(probe_targets, ip_probes=not opts.skip_discovery)
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

    def _discover_raw(self, addresses: list[str], *, ip_probes: bool = True) -> list[str]:
        """Privileged discovery: ARP/ND on a local link, else ICMP echo, SYN 443, ACK 80,
        ICMP timestamp (or, without *ip_probes* (-Pn), up without asking)."""
        from portscope.engine.discovery import HostDiscovery

        if self.on_phase:
            self.on_phase("discovery", len(addresses))
        disc = HostDiscovery(addresses, self.options.timing,
                             level=template_level(self.options.timing),
                             arp=self.options.arp_ping, ip_probes=ip_probes)
        self._engine = disc  # type: ignore[assignment]
        answers = disc.run()
        self._add_stats(disc.stats)
        live = []
        undecided = set(disc.offlink) if not ip_probes else set()
        for addr in addresses:
            ans = answers.get(addr)
            if addr in undecided:
                self._status[addr] = (HostStatus.UP, Reason.USER_SET)
                live.append(addr)
            elif ans is not None:
                self._status[addr] = (HostStatus.UP, ans.reason)
                self._rtt[addr] = ans.rtt
                if ans.mac:
                    self._mac[addr] = ans.mac
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
        # once per port of the scan (65,535 for a -p- host): kept lean
        if result.state is _OPEN and result.service is None:
            name = service_db().name(result.port, result.protocol.value)
            if name:
                result = replace(result, service=Service(name=name))
        ports = self._ports.get(address)
        if ports is None:
            ports = self._ports[address] = []
        ports.append(result)
        if self.on_port is not None:
            self.on_port(address, result)

    def _open_state(self) -> None:
        from portscope.engine.resume import StateWriter

        self._state_writer = None
        path = self.options.state_file or self.options.resume_file
        if path:
            header = {"seed": self.seed, "shard": list(self.options.shard),
                      "command": self.options.command,
                      "targets": list(self.targets.specs),
                      "ports": self.options.ports.canonical(),
                      "scan_types": list(self.scan_flags)}
            self._state_writer = StateWriter(path, header, append=self._resume is not None)

    def skip_stored(self, probes: Iterator[Probe]) -> Iterator[Probe]:
        """*probes* without those the stored run being resumed has already decided."""
        if self.resume is None:
            return probes
        done = self.resume.decided
        return (p for p in probes if (p.address, p.protocol, p.port) not in done)

    def run(self) -> ScanRun:
        opts = self.options
        t0 = time.monotonic()
        if self.on_start:
            self.on_start(self.run_header)
        self._open_state()
        if self._resume is not None:  # what the interrupted run decided, re-emitted
            for _flag, addr, result in self._resume.results:
                self._ports.setdefault(addr, []).append(result)
                if self.on_port:
                    self.on_port(addr, result)
        try:
            return self._run(opts, t0)
        finally:
            if self._state_writer is not None:
                self._state_writer.close()

    def _run(self, opts: ScanOptions, t0: float) -> ScanRun:
        live = self._discover()
        if live and not opts.discovery_only and not self._stopped:
            live_set = parse_targets(live)
            for flag in self.scan_flags:
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
                from portscope.engine.resume import filter_decided

                decided = self._resume.decided.get(flag, set()) if self._resume else set()
                record: Callable[[str, PortResult], None] = self._record

                if self._state_writer is not None:
                    def record(address: str, result: PortResult, flag: str = flag,
                               writer: Any = self._state_writer) -> None:
                        writer.port(flag, address, result)
                        self._record(address, result)

                engine = factory(self.skip_stored(filter_decided(
                    space.walk(shard=opts.shard), decided)), opts.timing, record)
                self._engine = engine
                engine.run()
                self._add_stats(engine.stats)
                unresolved = getattr(engine, "unresolved", 0)
                if unresolved:
                    self._warn(f"{unresolved} UDP port(s) could not be resolved: the target "
                               "rate-limits ICMP port-unreachable messages; they are reported "
                               "open|filtered with reason icmp-ratelimit (a slower "
                               "template waits longer for them: -T3 10 s, -T2 30 s)")
                for addr in live:
                    rtt = engine.rtt_of(addr)
                    if rtt is not None and addr not in self._rtt:
                        self._rtt[addr] = rtt
            if opts.services is not None and not self._stopped:
                self._detect_services(opts.services)
            if opts.os_detection and not self._stopped:
                self._detect_os()
        return self.result(complete=not self._stopped, duration=time.monotonic() - t0)

    def _detect_os(self) -> None:
        """-O: fingerprint the TCP/IP stack of every up host (raw packets)."""
        from portscope.engine.osdetect import os_detect
        from portscope.errors import PermissionProblem

        interim = self._build(complete=False, duration=0.0)
        up = [h for h in interim.hosts if h.status is HostStatus.UP]
        if not up:
            return
        if self.on_phase:
            self.on_phase("OS detection", len(up))
        try:
            done = os_detect(interim, stopped=lambda: self._stopped)
        except PermissionProblem as exc:
            self._warn(f"OS detection skipped: {exc}")
            return
        for h in done.hosts:
            if h.os is not None:
                self._os[h.address] = h.os
        skipped = [h.address for h in up if h.address not in self._os]
        if skipped:
            self._warn(f"no OS guess for {len(skipped)} host(s) (IPv6, or no reply to the "
                       "OS probes)")

    def _detect_services(self, options: ServiceOptions) -> None:
        """-sV: probe the open ports found, streaming each port again once identified."""
        from portscope.engine.services import Control, detect, wanted

        interim = self._build(complete=False, duration=0.0)
        count = sum(1 for _h, p in interim.iter_ports() if wanted(p))
        if not count:
            return
        if self.on_phase:
            self.on_phase("service detection", count)
        index = {(addr, p.key): i for addr, ports in self._ports.items()
                 for i, p in enumerate(ports)}

        def cb(address: str, result: PortResult) -> None:
            i = index.get((address, result.key))
            if i is not None:
                self._ports[address][i] = result
            callback = self.on_service or self.on_port
            if callback:
                callback(address, result)

        self._detection = Control()
        try:
            done = detect(interim, options, on_port=cb, control=self._detection)
        finally:
            self._detection = None
        self._service_stats = done.extra.get("service_detection")

    _service_stats: object = None

    def result(self, *, complete: bool, duration: float) -> ScanRun:
        run = self._build(complete=complete, duration=duration)
        if self.on_host:
            for host in run.hosts:
                self.on_host(host)
        return run

    def _build(self, *, complete: bool, duration: float) -> ScanRun:
        hosts = []
        for addr, (status, reason) in self._status.items():
            ports = sort_ports(self._ports.get(addr, []))
            rtt = self._rtt.get(addr)
            host = Host(
                address=addr,
                status=status,
                reason=str(reason),
                hostnames=(self.targets.hostnames[addr],) if addr in self.targets.hostnames
                else (),
                ports=tuple(ports),
                rtt_ms=round(rtt * 1000, 3) if rtt is not None else None,
                os=self._os.get(addr),
                mac=self._mac.get(addr),
            )
            hosts.append(host)
        hosts.sort(key=lambda h: address_key(h.address))
        up = sum(1 for h in hosts if h.status is HostStatus.UP)
        stats = replace(self.stats, duration_s=duration,
                        pps=self.stats.probes_sent / duration if duration > 0 else 0.0,
                        hosts_total=len(hosts), hosts_up=up)
        extra = dict(self.run_header.extra)
        if self.warnings:
            extra["warnings"] = list(self.warnings)
        if self._service_stats is not None:
            extra["service_detection"] = self._service_stats
        return replace(self.run_header, finished=utcnow(), complete=complete,
                       hosts=tuple(hosts), stats=stats, extra=extra)
