"""Raw host discovery, nmap's privileged default.

Targets on a directly connected Ethernet link are asked by ARP (IPv4) or Neighbor
Discovery (IPv6) (:mod:`portscope.engine.neighbor`, ``-PR``): an answer marks them up with
reason ``arp-response``/``nd-response`` and gives their MAC address; silence marks them
down (a firewall can drop IP probes but not ARP). ``--disable-arp-ping`` turns that off.

Every other target gets ICMP echo, SYN to 443, ACK to 80 and ICMP timestamp
(:class:`RawDiscovery`); any validated answer from the target marks it up. Unanswered
hosts are asked again (two rounds at most) before being reported down."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from portscope.engine.connect import EngineStats
from portscope.engine.neighbor import LinkSocket, NeighborDiscovery
from portscope.engine.rawsock import RawIO
from portscope.engine.timing import RateController, RttEstimator, Timing, TokenBucket
from portscope.packets import icmp as icmpmod
from portscope.packets.fast import (
    K_ECHO_REPLY,
    K_ICMP_ERROR,
    K_TCP,
    K_TIMESTAMP_REPLY,
    Cookie,
    TcpTemplate,
    icmp_probe,
    parse_reply,
)
from portscope.probes import ping
from portscope.probes.ping import NeighborPath


@dataclass
class HostAnswer:
    reason: str
    rtt: float
    ttl: int
    mac: str | None = None


@dataclass
class RawDiscovery:
    addresses: Iterable[str]
    timing: Timing
    level: int = 3
    rounds: int = 2
    clock: Callable[[], float] = time.monotonic
    stats: EngineStats = field(default_factory=EngineStats)
    io_factory: Callable[[], RawIO] = RawIO

    def __post_init__(self) -> None:
        self._stop = False
        self.answers: dict[str, HostAnswer] = {}

    def stop(self) -> None:
        self._stop = True

    def run(self) -> dict[str, HostAnswer]:
        io = self.io_factory()
        clock = self.clock
        base = io.port_base
        cookie = Cookie(os.urandom(16))
        rate = RateController(self.timing, clock(), self.level)
        bucket = TokenBucket(rate.rate, clock(), burst=max(1.0, rate.rate / 100))
        rtt = RttEstimator(self.timing)
        pending: dict[bytes, tuple[str, float]] = {}  # target -> (address, first send)
        buf = bytearray(65536)
        poller = select.poll()
        poller.register(io.fileno(), select.POLLIN)
        self.stats.started = clock()

        def send_all(addr: str, round_no: int) -> None:
            src = io.source_for(addr)
            if src is None:
                return
            packed = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
            sport = base + round_no
            pending[packed] = (addr, clock())  # before sending: a veth answers at once
            for kind in ping.probes_for(addr):
                if kind in ping.TCP_PORTS:
                    port, flags = ping.TCP_PORTS[kind]
                    ck = cookie(packed, port, sport)
                    pkt = TcpTemplate(src, addr, flags).render(sport, port, ck,
                                                               ck if flags & 0x10 else 0)
                else:
                    ck = cookie(packed, 0, sport) & 0xFFFF
                    if kind == ping.ECHO:
                        msg = (icmpmod.echo_request6(base, ck).encode(src, addr) if ":" in addr
                               else icmpmod.echo_request(base, ck).encode())
                    else:
                        msg = icmpmod.timestamp_request(base, ck).encode()
                    pkt = icmp_probe(src, addr, msg)
                io.send(pkt, addr)
                self.stats.probes_sent += 1

        def valid(rep_target: bytes, rep: object) -> bool:
            r = rep  # a Reply
            kind = r.kind  # type: ignore[attr-defined]
            if kind == K_TCP:
                off = r.our_port - base  # type: ignore[attr-defined]
                if not 0 <= off < io.SPAN:
                    return False
                ck = cookie(rep_target, r.port, r.our_port)  # type: ignore[attr-defined]
                return bool(((r.ack - ck) & 0xFFFFFFFF) <= 1 or r.seq == ck)  # type: ignore[attr-defined]
            if kind in (K_ECHO_REPLY, K_TIMESTAMP_REPLY):
                if r.our_port != base:  # type: ignore[attr-defined]
                    return False
                return any(r.seq == cookie(rep_target, 0, base + k) & 0xFFFF  # type: ignore[attr-defined]
                           for k in range(self.rounds))
            return False  # ICMP errors are checked by the quoted probe in drain()

        def drain(now: float) -> None:
            while True:
                n = io.recv_into(buf)
                if not n:
                    return
                rep = parse_reply(buf, n)
                if rep is None:
                    continue
                entry = pending.get(rep.target)
                if entry is None:
                    continue
                if rep.kind == K_ICMP_ERROR:
                    if rep.proto in (1, 58):
                        if rep.our_port != base:
                            continue
                    elif not 0 <= rep.our_port - base < io.SPAN:
                        continue
                    elif rep.proto == 6:
                        ck = cookie(rep.target, rep.port, rep.our_port)
                        if rep.seq != ck:
                            continue
                elif not valid(rep.target, rep):
                    continue
                reason = ping.up_reason(rep)
                if reason is None:
                    continue
                addr, first = entry
                del pending[rep.target]
                self.stats.replies += 1
                rtt.update(now - first)
                self.answers[addr] = HostAnswer(str(reason), now - first, rep.ttl)

        try:
            todo = list(self.addresses)
            for round_no in range(self.rounds):
                if self._stop:
                    break
                pending.clear()
                for addr in todo:
                    if self._stop:
                        break
                    while bucket.available(clock()) < 4:
                        drain(clock())
                        time.sleep(min(bucket.wait_time(clock()) + 0.0005, 0.01))
                    send_all(addr, round_no)
                    bucket.take(4)
                    drain(clock())
                deadline = clock() + max(rtt.timeout(), 0.05) * (1.5 if round_no else 1.0)
                while pending and clock() < deadline and not self._stop:
                    poller.poll(10)
                    drain(clock())
                todo = [a for a in todo if a not in self.answers]
                if not todo:
                    break
        finally:
            io.close()
            self.stats.finished = clock()
        return self.answers


@dataclass
class HostDiscovery:
    """The whole privileged discovery: ARP/ND for on-link targets (unless *arp* is False),
    the IP probes of :class:`RawDiscovery` for the others (unless *ip_probes* is False:
    ``-Pn``, where nmap still asks ARP/ND and only the off-link targets are taken as up).
    ``run()`` returns the answers (address -> :class:`HostAnswer`); the targets missing
    from it and not in ``offlink`` are down."""

    addresses: Iterable[str]
    timing: Timing
    level: int = 3
    arp: bool = True
    ip_probes: bool = True  # False (-Pn): only ARP/ND; off-link targets stay undecided
    clock: Callable[[], float] = time.monotonic
    stats: EngineStats = field(default_factory=EngineStats)
    planner: Callable[[list[str]], tuple[dict[str, NeighborPath], list[str]]] | None = None
    link_factory: Callable[[str, str], LinkSocket] = LinkSocket  # (ifname, "arp"|"nd")

    def __post_init__(self) -> None:
        self._stop = False
        self._current: RawDiscovery | NeighborDiscovery | None = None
        self.onlink: dict[str, NeighborPath] = {}
        self.offlink: list[str] = []  # the targets ARP/ND did not decide

    def stop(self) -> None:
        self._stop = True
        if self._current is not None:
            self._current.stop()

    def run(self) -> dict[str, HostAnswer]:
        targets = list(self.addresses)
        answers: dict[str, HostAnswer] = {}
        offlink = targets
        self.stats.started = self.clock()
        if self.arp and targets:
            from portscope.engine.neighbor import plan

            self.onlink, offlink = (self.planner or plan)(targets)
        if self.onlink and not self._stop:
            nd = NeighborDiscovery(self.onlink, self.timing, self.level,
                                   rounds=1 + min(self.timing.max_retries, 1), clock=self.clock,
                                   socket_factory=self.link_factory)
            self._current = nd
            for addr, a in nd.run().items():
                answers[addr] = HostAnswer(a.reason, a.rtt, 0, a.mac)
            self._add(nd.stats)
            offlink = offlink + nd.unreachable  # no link socket: fall back to IP probes
        self.offlink = offlink
        if offlink and self.ip_probes and not self._stop:
            raw = RawDiscovery(offlink, self.timing, self.level, clock=self.clock)
            self._current = raw
            answers.update(raw.run())
            self._add(raw.stats)
        self._current = None
        self.stats.finished = self.clock()
        return answers

    def _add(self, s: EngineStats) -> None:
        self.stats.probes_sent += s.probes_sent
        self.stats.replies += s.replies
        self.stats.retransmissions += s.retransmissions
