"""The TCP connect engine: one tight non-blocking epoll loop, no coroutine per port.

Measured on the namespace lab (bench/connect_design.py): a loop that owns the
sockets and polls them with epoll handles a full 65,535-port scan several times
faster than one asyncio task per port with ``wait_for`` (task creation, timer
handles and future callbacks dominate there). So this engine keeps, per probe in
flight, one socket and one heap entry, and nothing else.

* Timeouts come from each host's measured round-trip time (RFC 6298 estimator,
  clamped to the timing template), so LAN hosts are fast and slow links are not
  misreported as filtered.
* Unanswered probes are tried again; the number of tries grows only when a retry
  actually gets an answer (evidence of loss), like nmap's adaptive retries, and the
  window of probes in flight halves on such a loss.
* Parallelism is bounded by the congestion window, the template, ``--max-rate`` and
  the file-descriptor limit (raised to the hard limit at start).
* Every decided port is handed to ``on_result`` immediately (stream it, store it).
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import resource
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from portscope.engine.timing import RttEstimator, Timing, TokenBucket, Window
from portscope.model import PortResult, PortState, Protocol, Reason
from portscope.probes.connect import classify_errno
from portscope.targets.permutation import Probe

_LINGER_RST = struct.pack("ii", 1, 0)  # close() sends RST: no TIME_WAIT, no lingering
_FD_RESERVE = 64  # descriptors left for the rest of the process (outputs, store ...)

ResultCallback = Callable[[str, PortResult], None]

_FROM_TARGET = frozenset({Reason.SYN_ACK, Reason.CONN_REFUSED})


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the usable soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


@dataclass(slots=True)
class EngineStats:
    probes_sent: int = 0
    replies: int = 0
    retransmissions: int = 0
    started: float = 0.0
    finished: float = 0.0
    max_inflight: int = 0
    results: int = 0

    @property
    def duration(self) -> float:
        return max(self.finished - self.started, 0.0)


@dataclass(slots=True)
class _Flight:
    sock: socket.socket
    probe: Probe
    sent: float
    deadline: float
    tries: int
    serial: int


@dataclass(slots=True)
class _HostState:
    rtt: RttEstimator
    answered_retries: int = 0  # retries that got an answer: the link loses packets
    timeouts: int = 0
    first_sent: float = 0.0


@dataclass
class ConnectEngine:
    """Scan (address, tcp, port) probes with connect()."""

    probes: Iterator[Probe]
    timing: Timing
    on_result: ResultCallback
    clock: Callable[[], float] = time.monotonic
    stats: EngineStats = field(default_factory=EngineStats)
    min_tries: int = 2  # tries for an unanswered probe before the loss evidence raises it

    def __post_init__(self) -> None:
        self._hosts: dict[str, _HostState] = {}
        self._retry: deque[tuple[Probe, int]] = deque()
        self._stop = False

    def stop(self) -> None:
        """Ask the loop to stop after the current step (Ctrl-C handling)."""
        self._stop = True

    def _host(self, address: str) -> _HostState:
        st = self._hosts.get(address)
        if st is None:
            st = self._hosts[address] = _HostState(RttEstimator(self.timing))
        return st

    def _max_tries(self, hs: _HostState) -> int:
        cap = self.timing.max_retries + 1
        if hs.answered_retries:
            return cap
        return min(self.min_tries, cap)

    def run(self) -> EngineStats:
        timing = self.timing
        clock = self.clock
        stats = self.stats
        fd_limit = raise_fd_limit()
        max_parallel = max(1, min(timing.max_parallel, fd_limit - _FD_RESERVE))
        window = Window(min(timing.initial_parallel, max_parallel), max_parallel)
        bucket = TokenBucket(timing.max_rate, clock())
        ep = select.epoll()
        inflight: dict[int, _Flight] = {}
        heap: list[tuple[float, int, int]] = []  # (deadline, serial, fd)
        serial = 0
        source = self.probes
        source_done = False
        last_send = 0.0
        stats.started = clock()
        on_result = self.on_result
        hosts = self._hosts
        retry = self._retry
        tcp = Protocol.TCP

        def finish(fl: _Flight, state: PortState, reason: str, now: float) -> None:
            stats.results += 1
            on_result(fl.probe.address, PortResult(fl.probe.port, tcp, state, reason))

        def launch(probe: Probe, tries: int, now: float) -> bool:
            """Start one connect; False if the probe must wait (local resource limits)."""
            nonlocal serial
            family = socket.AF_INET6 if ":" in probe.address else socket.AF_INET
            try:
                s = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    window.cwnd = max(window.floor, len(inflight) - 1)
                    return False
                raise
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            hs = hosts.get(probe.address) or self._host(probe.address)
            if not hs.first_sent:
                hs.first_sent = now
            err = s.connect_ex((probe.address, probe.port))
            stats.probes_sent += 1
            if tries > 1:
                stats.retransmissions += 1
            serial += 1
            fl = _Flight(s, probe, now, now + hs.rtt.timeout() * (1.5 if tries > 1 else 1.0),
                         tries, serial)
            if err in (errno.EINPROGRESS, errno.EALREADY):
                fd = s.fileno()
                inflight[fd] = fl
                ep.register(fd, select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP)
                heapq.heappush(heap, (fl.deadline, serial, fd))
                return True
            decide(fl, err, now, immediate=True)
            return True

        def decide(fl: _Flight, err: int, now: float, immediate: bool = False) -> None:
            s = fl.sock
            if err == 0 and _self_connected(s):
                err = errno.ECONNREFUSED
            s.close()
            verdict = classify_errno(err)
            if verdict is None:  # local resource problem: say nothing, try again later
                stats.probes_sent -= 1
                retry.append((fl.probe, fl.tries))
                window.cwnd = max(window.floor, window.cwnd / 2)
                return
            state, reason = verdict
            hs = hosts[fl.probe.address]
            if reason is not Reason.NO_RESPONSE:
                stats.replies += 1
                if not immediate:
                    if fl.tries == 1:
                        hs.rtt.update(now - fl.sent)
                    elif reason in _FROM_TARGET:
                        # a retry answered by the target itself: the first try was lost.
                        # (ICMP errors do not count: routers and hosts rate-limit them, so
                        # a late one says nothing about loss; nmap reasons the same way.)
                        hs.answered_retries += 1
                        window.on_drop()
                window.on_reply()
            finish(fl, state, reason, now)

        try:
            while not self._stop:
                now = clock()
                # 1. fill the window
                limit = window.limit
                while len(inflight) < limit and not self._stop:
                    if retry:
                        probe, tries = retry[0]
                    elif not source_done:
                        nxt = next(source, None)
                        if nxt is None:
                            source_done = True
                            continue
                        retry.appendleft((nxt, 0))
                        continue
                    else:
                        break
                    if timing.scan_delay and now - last_send < timing.scan_delay:
                        break
                    if bucket.rate is not None and bucket.available(now) < 1:
                        break
                    retry.popleft()
                    if not launch(probe, tries + 1, now):
                        retry.appendleft((probe, tries))
                        break
                    bucket.take()
                    last_send = now
                if len(inflight) > stats.max_inflight:
                    stats.max_inflight = len(inflight)
                if not inflight and not retry and source_done:
                    break
                # 2. wait for answers or the next deadline
                wait = 0.05
                if heap:
                    wait = min(wait, max(heap[0][0] - now, 0.0))
                if len(inflight) < limit and (retry or not source_done):
                    if timing.scan_delay:
                        wait = min(wait, max(timing.scan_delay - (now - last_send), 0.0))
                    elif bucket.rate is not None:
                        wait = min(wait, bucket.wait_time(now))
                    else:
                        wait = 0.0
                if inflight:
                    events = ep.poll(wait, 4096)
                else:
                    time.sleep(wait)
                    events = []
                now = clock()
                for fd, _ev in events:
                    fl = inflight.pop(fd, None)
                    if fl is None:
                        continue
                    ep.unregister(fd)
                    err = fl.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    decide(fl, err, now)
                # 3. expire probes past their deadline
                while heap and heap[0][0] <= now:
                    _, ser, fd = heapq.heappop(heap)
                    fl = inflight.get(fd)
                    if fl is None or fl.serial != ser:
                        continue
                    del inflight[fd]
                    ep.unregister(fd)
                    fl.sock.close()
                    hs = hosts[fl.probe.address]
                    hs.timeouts += 1
                    if fl.tries < self._max_tries(hs):
                        retry.append((fl.probe, fl.tries))
                    else:
                        finish(fl, PortState.FILTERED, Reason.NO_RESPONSE, now)
        finally:
            for fl in inflight.values():
                fl.sock.close()
            ep.close()
            stats.finished = clock()
        return stats

    def rtt_of(self, address: str) -> float | None:
        hs = self._hosts.get(address)
        return hs.rtt.srtt if hs else None


def _self_connected(s: socket.socket) -> bool:
    """A connect to a local port in the ephemeral range can connect to itself
    (TCP simultaneous open): that port has no listener."""
    try:
        return bool(s.getsockname()[:2] == s.getpeername()[:2])
    except OSError:
        return False


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
