"""The raw-packet engine: SYN, FIN/NULL/Xmas, ACK, Window and UDP scans over IPv4 and IPv6.

One loop in one thread (the GIL makes more threads slower, not faster) that sends from
packet templates and drains an AF_PACKET socket with a kernel filter (``rawsock``).

* **Stateless validation**: every probe carries a keyed cookie (the TCP sequence number;
  for UDP the IPv4 identification) bound to (target, port, source port); a reply counts
  only if it gives the cookie back (ack - 1, RST seq, or the ICMP error's quote).
  The source port encodes the try number, so an answer is attributed to the very try it
  answers (RTT samples and loss evidence stay exact with retransmissions in flight).
* **Bounded state**: probes in flight and undecided probes are the only per-probe state;
  timing and loss are kept per /24 (IPv4) or /64 (IPv6), so memory follows the results,
  not the size of the target space.
* **Rate control** (``timing.RateController``): tells random loss from congestion.
* **Retransmission of unanswered probes only**, adaptive: the number of tries follows the
  loss ratio measured on the target's own answers (probability of missing an answering
  port below 1e-5), within the template's maximum. Before giving up on silent probes the
  engine re-checks them against the final loss estimate.
* **UDP and ICMP rate limits**: closed UDP ports answer with ICMP port unreachable, which
  targets rate-limit (Linux: ~1/s per source after a burst of 6). Silent UDP ports of a
  host that did send port-unreachables are re-probed *paced* at the learned ICMP rate
  within a time budget; what stays unknown is reported ``open|filtered`` with reason
  ``icmp-ratelimit``, never guessed closed.
* Fed from a probe iterator (resume: filter the iterator), results streamed to
  ``on_result`` the moment they are decided.
"""

from __future__ import annotations

import gc
import math
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from portscope.engine.connect import EngineStats, ResultCallback
from portscope.engine.rawsock import BatchReceiver, RawIO
from portscope.engine.sender import ProcessSender
from portscope.engine.timing import RateController, RttEstimator, Timing, TokenBucket
from portscope.model import PortState, Protocol, Reason
from portscope.model.core import fast_port_result
from portscope.packets.fast import (
    K_ICMP_ERROR,
    K_TCP,
    K_UDP,
    Cookie,
    Reply,
    TcpTemplate,
    UdpTemplate,
    parse_reply,
)
from portscope.packets.tcp import mss as mss_option
from portscope.probes.base import ScanType
from portscope.targets.permutation import Probe

_M32 = 0xFFFFFFFF
MISS_PROBABILITY = 1e-5  # target chance of missing an answering port through random loss
# budget for resolving UDP ports behind an ICMP rate limit, per template level (seconds)
UDP_RESOLVE_TIME = {0: 60.0, 1: 60.0, 2: 30.0, 3: 10.0, 4: 3.0, 5: 1.5}

# flight states
_INFLIGHT, _QUEUED, _SILENT = 0, 1, 2

# IPv4 header without options + the first 16 bytes of TCP, in one unpack (receive fast path):
# version/IHL, fragment word, TTL, protocol, source, sport, dport, seq, ack, offset/flags,
# window
_FAST4 = struct.Struct("!B5xHBB2x4s4xHHIIHH")


@dataclass(slots=True)
class _Group:
    """Timing and loss of one /24 (IPv4) or /64 (IPv6)."""

    rtt: RttEstimator
    answers: int = 0  # answers from targets
    drops: int = 0  # retransmissions that got the answer: earlier tries were lost
    unreach: list[float] = field(default_factory=list)  # port-unreachable arrival times
    unreach_count: int = 0


def _group_key(target: bytes) -> bytes:
    return target[:3] if len(target) == 4 else target[:8]


@dataclass
class RawEngine:
    probes: Iterator[Probe]
    timing: Timing
    on_result: ResultCallback
    scan_type: ScanType
    level: int = 3  # timing template (initial rate)
    clock: Callable[[], float] = time.monotonic
    stats: EngineStats = field(default_factory=EngineStats)
    payloads: Callable[[int], bytes] | None = None
    udp_resolve_time: float | None = None
    min_tries: int = 2
    io_factory: Callable[[], RawIO] = RawIO
    use_sender_process: bool = True  # raw sends in a helper process (another core)

    def __post_init__(self) -> None:
        if self.scan_type.raw is None:
            raise ValueError(f"{self.scan_type.name} is not a raw scan type")
        self._stop = False
        self._groups: dict[bytes, _Group] = {}
        self._last_target = b""
        self._last_group = _Group(RttEstimator(self.timing))
        self.rate: RateController | None = None
        self.unresolved = 0  # UDP ports left open|filtered because of ICMP rate limits
        self.icmp_rates: dict[str, float] = {}  # learned ICMP error rate per /24, /64

    def stop(self) -> None:
        self._stop = True

    def rtt_of(self, address: str) -> float | None:
        try:
            packed = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET,
                                      address)
        except OSError:
            return None
        g = self._groups.get(_group_key(packed))
        return g.rtt.srtt if g else None

    def _group(self, target: bytes) -> _Group:
        if target == self._last_target:
            return self._last_group
        k = _group_key(target)
        g = self._groups.get(k)
        if g is None:
            g = self._groups[k] = _Group(RttEstimator(self.timing))
        self._last_target, self._last_group = target, g
        return g

    def max_tries(self, g: _Group) -> int:
        cap = self.timing.max_retries + 1
        if not g.drops:
            return min(self.min_tries, cap)
        p = min(g.drops / max(g.answers, 1), 0.9)
        need = math.ceil(math.log(MISS_PROBABILITY) / math.log(p)) if p > 0 else 1
        return max(min(self.min_tries, cap), min(need, cap))

    # ------------------------------------------------------------------------------------
    def run(self) -> EngineStats:
        raw = self.scan_type.raw
        assert raw is not None
        timing = self.timing
        clock = self.clock
        stats = self.stats
        io = self.io_factory()
        sender: ProcessSender | None = None
        if self.use_sender_process:
            try:
                sender = ProcessSender(io.send4.fileno(), io.send6.fileno())
            except OSError:
                sender = None
        base = io.port_base
        span = io.SPAN
        cookie_of = Cookie(os.urandom(16))
        is_tcp = raw.kind == "tcp"
        proto_num = 6 if is_tcp else 17
        tcp_flags = raw.tcp_flags
        ack_probe = bool(tcp_flags & 0x10)
        options = (mss_option(raw.mss),) if raw.mss else ()
        payload_of = self.payloads or (lambda port: b"")
        classify = raw.classify
        evidence = raw.evidence
        no_response = self.scan_type.no_response
        proto_enum = Protocol.TCP if is_tcp else Protocol.UDP
        on_result = self.on_result
        groups = self._groups
        group_of = self._group

        rate = self.rate = RateController(timing, clock(), self.level)
        bucket = TokenBucket(rate.rate, clock(), burst=max(1.0, rate.rate / 100))
        cap = max(1, timing.max_parallel * 32) if timing.scan_delay == 0 else 1

        flights: dict[tuple[bytes, int], list[Any]] = {}
        # probes in send order; a probe expires when it has waited its group's *current*
        # timeout (so early probes sent before the first RTT sample do not wait for the
        # conservative initial timeout). A FIFO, not a heap: timeouts are per /24.
        heap: deque[tuple[float, int, tuple[bytes, int]]] = deque()
        retry: deque[tuple[bytes, int]] = deque()
        templates: dict[str, tuple[bytes, Any, bytes, bytes, int]] = {}
        active = 0
        serial = 0
        source = self.probes
        source_done = False
        buf = bytearray(65536)
        recv_into = io.recv_into
        send = sender.send if sender is not None else io.send
        poller = select.poll()
        poller.register(io.fileno(), select.POLLIN)
        stats.started = clock()
        pton = socket.inet_pton
        af4, af6 = socket.AF_INET, socket.AF_INET6

        last_t: list[Any] = ["", None]
        # one TCP template per /24 (/64): the source address the kernel picks (a route
        # lookup) and the template are shared by its addresses, each probe retargets it;
        # nothing is kept per address, so memory does not grow with the target space
        by_group: dict[bytes, Any] = {}

        def template(addr: str) -> tuple[bytes, Any, bytes, bytes, int] | None:
            """(packed target, template, b"" (unused), IP header, checksum base)."""
            if last_t[0] == addr:
                return last_t[1]  # type: ignore[no-any-return]
            v6 = ":" in addr
            packed = pton(af6 if v6 else af4, addr)
            if not is_tcp:
                t = templates.get(addr)
                if t is None:
                    src = io.source_for(addr)
                    if src is None:
                        return None
                    if len(templates) > 4096:
                        templates.clear()
                    t = templates[addr] = (packed, UdpTemplate(src, addr), b"", b"", 0)
            else:
                gk = packed[:8] if v6 else packed[:3]
                tpl = by_group.get(gk, False)
                if tpl is False:
                    src = io.source_for(addr)
                    tpl = None if src is None else TcpTemplate(
                        src, addr, tcp_flags, window=raw.window, options=options)
                    if len(by_group) > 65536:
                        by_group.clear()
                    by_group[gk] = tpl
                if tpl is None:
                    return None
                head, cbase = tpl.retarget(packed)
                t = (packed, tpl, b"", head, cbase)
            last_t[0], last_t[1] = addr, t
            return t

        def emit(e: list[Any], state: PortState, reason: str, ttl: int | None) -> None:
            probe = e[0]
            assert isinstance(probe, Probe)
            stats.results += 1
            on_result(probe.address, fast_port_result(probe.port, proto_enum, state, reason, ttl))

        def transmit(key: tuple[bytes, int], e: list[Any], now: float) -> bool:
            """Send the next try of *e*; False when the local send queue is full."""
            nonlocal serial, active
            probe = e[0]
            assert isinstance(probe, Probe)
            t = template(probe.address)
            if t is None:  # no route: nothing can be sent, the kernel says unreachable
                del flights[key]
                emit(e, PortState.FILTERED, Reason.NET_UNREACH, None)
                return True
            target, tpl, _prefix, head, cbase = t
            tries = int(e[1]) + 1
            sport = base + min(tries - 1, span - 1)
            ck = cookie_of(target, probe.port, sport)
            if is_tcp:
                ack = ck if ack_probe else 0
                x = cbase + sport + probe.port + (ck >> 16) + (ck & 0xFFFF) + (ack >> 16) + \
                    (ack & 0xFFFF)
                x = (x & 0xFFFF) + (x >> 16)
                x = (x & 0xFFFF) + (x >> 16)
                _b, of, win, opts = tpl.fields
                pkt = head + tpl.pack(sport, probe.port, ck, ack, of, win, ~x & 0xFFFF, 0, opts)
            else:
                pkt = tpl.render(sport, probe.port, payload_of(probe.port), ck & 0xFFFF)
            err = send(pkt, probe.address)
            if err in (11, 105):  # EAGAIN, ENOBUFS: our own queue is full
                if sender is None:  # the kernel's (with the helper: backpressure only)
                    rate.on_local_drop()
                return False
            # other errors (EPERM from a local firewall, unreachable ...): count the probe
            # as sent and silent, its timeout decides
            serial += 1
            e[1] = tries
            e[2] = now
            e[3] = ck
            e[4] = serial
            e[5] = _INFLIGHT
            active += 1
            rate.sent += 1
            if tries > 1:
                stats.retransmissions += 1
            # a retransmission waits the group's current timeout, as the first try does
            # (and as nmap's do): the timeout already follows the measured RTT and its
            # variance; late answers to an earlier try still count (the source port
            # names the try)
            heap.append((now, serial, key))
            return True

        fast4 = _FAST4.unpack_from
        flights_get = flights.get
        port_table = cookie_of.port_table
        sport_table = cookie_of.sport_table
        tcp_memo: dict[tuple[int, int], tuple[Any, bool] | None] = {}
        INFLIGHT = _INFLIGHT
        PortResult_ = fast_port_result

        def tcp_verdict(flags: int, window: int, target: bytes, port: int, our_port: int,
                        seq: int, ack: int, ttl: int) -> tuple[Any, bool] | None:
            """classify() of a TCP reply from the target, memoised on (flags, window)."""
            mk = (flags, window)
            if mk in tcp_memo:
                return tcp_memo[mk]
            r = Reply(K_TCP, target, 6, port, our_port, seq, ack, flags, window, 0, 0,
                      target, ttl, b"")
            v = classify(r, True)
            out = None if v is None else (v, bool(evidence(r)))
            if len(tcp_memo) < 4096:
                tcp_memo[mk] = out
            return out

        sock_recv_into = io.recv.recv_into if type(io) is RawIO else None
        memo_get = tcp_memo.get
        miss: Any = object()

        last_rx = [0.0]  # when a packet last arrived

        def receive(now: float) -> int:
            """Drain the receive socket; counters are kept in locals and added once."""
            counts = [0, 0, 0]  # replies, results, answers (fast path)
            try:
                got = _receive(now, counts)
                if got:
                    last_rx[0] = now
                return got
            finally:
                stats.replies += counts[0]
                stats.results += counts[1]
                rate.answers += counts[2]

        # many packets per system call where recvmmsg can be reached (ctypes, libc)
        batch: BatchReceiver | None = None
        if type(io) is RawIO and not os.environ.get("PORTSCOPE_NO_MMSG"):
            try:
                batch = BatchReceiver(io.fileno())
            except (OSError, AttributeError):
                batch = None
        SLOT = BatchReceiver.SLOT
        rbuf = batch.buffer if batch is not None else buf
        lens: Any = batch.lengths if batch is not None else [0]
        batch_receive = batch.receive if batch is not None else None

        def next_packets() -> range:
            """Receive what is waiting: up to 64 packets per system call (recvmmsg) into
            ``rbuf`` slots, else one (recv) into slot 0."""
            if batch_receive is not None:
                return range(0, batch_receive() * SLOT, SLOT)
            if sock_recv_into is not None:
                try:
                    n = sock_recv_into(buf)
                except OSError:  # BlockingIOError: nothing waiting
                    n = 0
            else:
                n = recv_into(buf)
            lens[0] = n
            return range(0, SLOT if n else 0, SLOT)

        def _receive(now: float, counts: list[int]) -> int:
            nonlocal active
            handled = replies = results = answers = 0
            g_src = b""
            g: Any = None  # the group of g_src (looked up when the source changes)
            while True:
                offsets = next_packets()
                if not offsets:
                    counts[0], counts[1], counts[2] = replies, results, answers
                    return handled
                for po in offsets:
                    handled += 1
                    n = lens[po // SLOT * 16 + 14] if batch is not None else lens[0]
                    if is_tcp and n >= 40 and rbuf[po] == 0x45 and rbuf[po + 9] == 6:
                        # fast path: IPv4 without options, TCP (nearly every reply)
                        (_v, frag, ttl, _p, src, sport, dport, seq, ack, of,
                         win) = fast4(rbuf, po)
                        if frag & 0x1FFF:
                            continue
                        key = (src, sport)
                        e = flights_get(key)
                        if e is None:
                            continue
                        off = dport - base
                        if not 0 <= off < span:
                            continue
                        tries = e[1]
                        if off == (tries - 1 if tries <= span else span - 1):
                            ck = e[3]
                        else:
                            ck = cookie_of(src, sport, dport)
                        if ((ack - ck) & _M32) > 1 and seq != ck:
                            continue
                        flags = of & 0x1FF
                        vd = memo_get((flags, win), miss)
                        if vd is miss:
                            vd = tcp_verdict(flags, win, src, sport, dport, seq, ack, ttl)
                        if vd is None:
                            continue
                        replies += 1
                        if src != g_src:
                            g, g_src = group_of(src), src
                        if vd[1]:
                            g.answers += 1
                            answers += 1
                            if off == 0:
                                # every RTT sample at first, then every 8th: a -p- scan has
                                # 60k answers and the estimate has long settled
                                if tries == 1 and e[5] == INFLIGHT and (
                                        g.answers < 64 or not g.answers & 7):
                                    g.rtt.update(now - e[2])
                            else:
                                g.drops += 1
                                rate.on_loss()
                        if e[5] == INFLIGHT:
                            active -= 1
                        del flights[key]
                        v = vd[0]
                        results += 1
                        on_result(e[0].address, PortResult_(sport, proto_enum, v[0], v[1], ttl))
                        continue
                    if batch is not None:
                        n = min(n, SLOT)
                        buf[:n] = rbuf[po:po + n]
                    rep = parse_reply(buf, n)
                    if rep is None or rep.proto != proto_num:
                        continue
                    key = (rep.target, rep.port)
                    e = flights.get(key)
                    if e is None:
                        continue
                    off = rep.our_port - base
                    if not 0 <= off < span:
                        continue
                    tries = int(e[1])
                    ck = int(e[3]) if off == min(tries - 1, span - 1) else \
                        cookie_of(rep.target, rep.port, rep.our_port)
                    kind = rep.kind
                    if is_tcp:
                        if kind == K_TCP:
                            if ((rep.ack - ck) & _M32) > 1 and rep.seq != ck:
                                continue
                        elif kind == K_ICMP_ERROR:
                            if rep.seq != ck:
                                continue
                        else:
                            continue
                    elif kind == K_ICMP_ERROR:
                        if len(rep.target) == 4 and rep.ack != (ck & 0xFFFF):
                            continue
                    elif kind != K_UDP:
                        continue
                    from_target = rep.responder == rep.target
                    verdict = classify(rep, from_target)
                    if verdict is None:
                        continue
                    stats.replies += 1
                    gr = group_of(rep.target)  # (not g: that is the fast path's cache)
                    if from_target and evidence(rep):
                        gr.answers += 1
                        rate.answers += 1
                        if off == 0:
                            if tries == 1 and e[5] == _INFLIGHT:
                                gr.rtt.update(now - float(e[2]))
                        else:
                            gr.drops += 1
                            rate.on_loss()
                    elif kind == K_ICMP_ERROR and verdict[0] is PortState.CLOSED:
                        gr.unreach_count += 1
                        if len(gr.unreach) < 256:
                            gr.unreach.append(now)
                    if e[5] == _INFLIGHT:
                        active -= 1
                    del flights[key]
                    emit(e, verdict[0], verdict[1], rep.ttl)

        fast_send = is_tcp and sender is not None
        sbuf = sender.buffer if sender is not None else bytearray()
        max_pending = ProcessSender.MAX_PENDING
        s0 = sport_table[base & 0xFF]  # first tries use the base source port

        def send_fresh(budget: int, now: float) -> int:
            """First tries of new TCP probes straight from the source, rendered inline into
            the sender's buffer (the common case of every scan: no retries queued)."""
            nonlocal source_done, serial, active
            assert sender is not None
            if len(sbuf) > max_pending:
                sender.flush()
                if len(sbuf) > max_pending:
                    # the helper is behind: back pressure, not congestion (the rate does
                    # not grow while it cannot be sent at)
                    return 0
            sent = 0
            last_addr = ""
            target = prefix = opts = b""
            th = cbase = of = win = 0
            tpack: Any = None
            ser = serial
            sb = sbuf  # (the same bytearray: += extends it in place)
            while sent < budget:
                want = budget - sent
                got = 0
                for probe in islice(source, want):
                    got += 1
                    addr = probe.address
                    if addr != last_addr:
                        t = template(addr)
                        if t is None:
                            emit([probe], PortState.FILTERED, Reason.NET_UNREACH, None)
                            last_addr = ""
                            continue
                        target, tpl, _p, head, cb_ = t
                        _b, of, win, opts = tpl.fields
                        # the sender's frame length, then the IP header
                        prefix = (len(head) + 20 + len(opts)).to_bytes(2, "big") + head
                        cbase = cb_ + base
                        tpack = tpl.pack
                        th = cookie_of.target_hash(target)
                        last_addr = addr
                    port = probe.port
                    key = (target, port)
                    if key in flights:  # the same probe twice in the input
                        continue
                    ck = th ^ port_table[port] ^ s0
                    if ack_probe:
                        x = cbase + port + ((ck >> 16) << 1) + ((ck & 0xFFFF) << 1)
                    else:
                        x = cbase + port + (ck >> 16) + (ck & 0xFFFF)
                    x = (x & 0xFFFF) + (x >> 16)
                    x = (x & 0xFFFF) + (x >> 16)
                    sb += prefix
                    sb += tpack(base, port, ck, ck if ack_probe else 0, of, win,
                                  ~x & 0xFFFF, 0, opts)
                    ser += 1
                    flights[key] = [probe, 1, now, ck, ser, INFLIGHT]
                    heap.append((now, ser, key))
                    sent += 1
                if got < want:
                    source_done = True
                    break
            serial = ser
            active += sent
            rate.sent += sent
            if len(sbuf) >= 16384:
                sender.flush()
            return sent

        def expire(now: float) -> None:
            nonlocal active
            last_t = None
            to = 0.0
            timeouts: dict[bytes, float] = {}  # per group, for this call
            while heap:
                sent_at, ser, key = heap[0]
                t = key[0]
                if t is not last_t:
                    gk = t[:3] if len(t) == 4 else t[:8]
                    to = timeouts.get(gk, -1.0)
                    if to < 0:
                        to = timeouts[gk] = group_of(t).rtt.timeout()
                    last_t = t
                if now - sent_at < to:
                    break
                heap.popleft()
                e = flights.get(key)
                if e is None or e[4] != ser or e[5] != _INFLIGHT:
                    continue
                active -= 1
                target = key[0]
                g = groups.get(_group_key(target)) or group_of(target)
                if int(e[1]) < self.max_tries(g):
                    e[5] = _QUEUED
                    retry.append(key)
                else:
                    e[5] = _SILENT

        def wait(seconds: float) -> None:
            # poll() rounds up to whole milliseconds: sleep shorter waits instead
            if seconds >= 0.002:
                poller.poll(seconds * 1000.0)
            elif seconds > 0:
                time.sleep(seconds)

        # Tail probe (TCP): once every probe is sent, the send queue is empty and replies
        # have stopped for four times the smallest RTT seen (10 ms at least), the probes
        # still waiting are almost surely unanswered: their next try goes out now instead
        # of after the full timeout (>= 100 ms at -T4), as a TCP sender's tail loss probe
        # does. It only moves a retransmission earlier (an answer to either try counts;
        # the tries allowed and the final wait are unchanged). Once per scan pass.
        tail_probe = [0.0]

        def arm_tail_probe() -> None:
            low = min((g.rtt.minimum for g in groups.values()), default=float("inf"))
            tail_probe[0] = max(4 * low, 0.01) if is_tcp and low < 0.5 else 0.0

        def tail_probe_now() -> None:
            nonlocal active
            tail_probe[0] = 0.0
            for key, e in flights.items():
                if e[5] == INFLIGHT and int(e[1]) < self.max_tries(group_of(key[0])):
                    e[5] = _QUEUED
                    active -= 1
                    retry.append(key)

        def pump(can_send: Callable[[], bool]) -> None:
            """The main loop: send what the rate allows, receive, expire, until done."""
            nonlocal source_done
            next_drop_check = clock() + 0.05
            tail_probe[0] = -1.0  # armed when the source runs dry
            while not self._stop:
                now = clock()
                if rate.slow_start:
                    low = self._last_group.rtt.minimum
                    rate.path_rtt = low if low < 1.0 else None
                if rate.tick(now):
                    bucket.rate = rate.rate
                    bucket.burst = max(1.0, rate.rate / 100)
                if now >= next_drop_check:
                    d = io.drops()
                    if d:
                        rate.on_local_drop(d)
                    next_drop_check = now + 0.05
                # 1. send
                avail = bucket.available(now)
                tokens = cap if avail == float("inf") else int(avail)
                budget = min(tokens, cap - active)
                sent = 0
                blocked = False
                # retransmissions first, then new probes (inline for TCP)
                while retry and sent < budget and can_send():
                    key = retry.popleft()
                    e = flights.get(key)
                    if e is None or e[5] != _QUEUED:
                        continue
                    if not transmit(key, e, now):
                        retry.appendleft(key)
                        blocked = True
                        break
                    sent += 1
                if fast_send and not blocked and not retry and not source_done and \
                        sent < budget and can_send():
                    sent += send_fresh(budget - sent, now)
                    blocked = True  # send_fresh stops only at the budget or the end
                while not blocked and sent < budget and can_send():
                    if retry:
                        key = retry.popleft()
                        e = flights.get(key)
                        if e is None or e[5] != _QUEUED:
                            continue
                    elif not source_done:
                        probe = next(source, None)
                        if probe is None:
                            source_done = True
                            break
                        t = template(probe.address)
                        if t is None:
                            emit([probe], PortState.FILTERED, Reason.NET_UNREACH, None)
                            continue
                        key = (t[0], probe.port)
                        if key in flights:  # the same probe twice in the input
                            continue
                        e = [probe, 0, 0.0, 0, 0, _QUEUED]
                        flights[key] = e
                    else:
                        break
                    if not transmit(key, e, now):
                        retry.appendleft(key)
                        break
                    sent += 1
                if sent:
                    bucket.take(sent)
                    stats.probes_sent += sent
                if sender is not None and sender.pending:
                    sender.flush()
                if len(flights) > stats.max_inflight:
                    stats.max_inflight = len(flights)
                # 2. receive
                got = receive(now)
                # 3. expire
                now = clock()
                expire(now)
                if source_done and tail_probe[0] < 0:
                    arm_tail_probe()
                if tail_probe[0] > 0 and source_done and not retry and active and \
                        now - last_rx[0] >= tail_probe[0] and \
                        (sender is None or not sender.unsent()):
                    tail_probe_now()
                if active == 0 and not retry and (source_done or not can_send()):
                    return
                # 4. wait for replies when there is nothing to send right now
                if got or (sent and sent == budget and budget > 0):
                    continue
                idle = 0.05
                if heap:
                    h0 = heap[0]
                    due = h0[0] + group_of(h0[2][0]).rtt.timeout()
                    idle = min(idle, max(due - now, 0.0))
                if (retry or not source_done) and active < cap and can_send():
                    idle = min(idle, bucket.wait_time(now))
                wait(idle)

        # the hot loop allocates no reference cycles: the cyclic GC would only rescan the
        # (large, long-lived) heap of the process every few thousand results
        affinity = sender.pin() if sender is not None else None
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            pump(lambda: True)
            # re-check silent probes against the final loss estimate, then UDP paced
            for _ in range(4):
                if self._stop:
                    break
                again = 0
                for key, e in flights.items():
                    if e[5] == _SILENT and int(e[1]) < self.max_tries(
                            group_of(key[0])):
                        e[5] = _QUEUED
                        retry.append(key)
                        again += 1
                if not again:
                    break
                pump(lambda: True)
            if not is_tcp and not self._stop:
                self._resolve_udp(flights, retry, pump, rate, bucket)
            # whatever is still undecided was never answered
            for key, e in list(flights.items()):
                reason = str(Reason.NO_RESPONSE)
                if len(e) > 6 and e[6] == "ratelimit":
                    reason = str(Reason.ICMP_RATELIMIT)
                    self.unresolved += 1
                if not self._stop or e[5] == _SILENT:
                    emit(e, no_response, reason, None)
                del flights[key]
        finally:
            if gc_enabled:
                # what the scan allocated (a PortResult per port ...) is all in the
                # youngest generation: the first collection after enable() would walk it
                # (26 ms after a -p- scan). freeze + unfreeze moves it to the oldest
                # generation without a walk; a later full collection still sees it.
                gc.freeze()
                gc.unfreeze()
                gc.enable()
            if sender is not None:
                try:
                    sender.close()
                finally:
                    sender.unpin(affinity)
            io.close()
            stats.finished = clock()
        return stats

    def _resolve_udp(self, flights: dict[tuple[bytes, int], list[Any]],
                     retry: deque[tuple[bytes, int]], pump: Callable[[Callable[[], bool]], None],
                     rate: RateController, bucket: TokenBucket) -> None:
        """Re-probe silent UDP ports of hosts that send port-unreachables, paced at the
        ICMP rate learned for them, within the time budget."""
        budget = self.udp_resolve_time
        if budget is None:
            budget = UDP_RESOLVE_TIME.get(self.level, 10.0)
        by_group: dict[bytes, list[tuple[bytes, int]]] = {}
        for key, e in flights.items():
            g = self._groups.get(_group_key(key[0]))
            if e[5] == _SILENT and g is not None and g.unreach_count:
                by_group.setdefault(_group_key(key[0]), []).append(key)
                e.append("ratelimit")
        if not by_group or budget <= 0:
            return
        clock = self.clock
        deadline = clock() + budget
        paces: dict[bytes, float] = {}
        for gk in by_group:
            g = self._groups[gk]
            times = g.unreach
            r = 1.0  # Linux default: net.ipv4.icmp_ratelimit = 1000 ms
            if len(times) >= 12 and times[-1] > times[0]:
                burst_free = times[6:]
                if len(burst_free) >= 2 and burst_free[-1] > burst_free[0]:
                    r = (len(burst_free) - 1) / (burst_free[-1] - burst_free[0])
            r = min(max(r, 0.2), 10000.0)
            paces[gk] = r
            self.icmp_rates[str(gk.hex())] = r
        # the bucket is empty after the main pass: start one interval later, and pace 10%
        # slower than the learned rate so every paced probe finds a token
        start = clock()
        next_at = {gk: start + 1.1 / paces[gk] for gk in by_group}
        silences: dict[tuple[bytes, int], int] = {}
        rate.fixed = True  # pacing, not the rate controller, decides now
        bucket.rate = None

        def can_send() -> bool:
            now = clock()
            if now >= deadline:
                return False
            for gk, keys in by_group.items():
                while keys and keys[0] not in flights:
                    keys.pop(0)
                if keys and now >= next_at[gk]:
                    key = keys.pop(0)
                    e = flights[key]
                    if e[5] != _SILENT:
                        continue
                    n = silences.get(key, 0)
                    if n >= 2:
                        e[6] = "silent"  # paced twice and still silent: really no answer
                        continue
                    silences[key] = n + 1
                    keys.append(key)
                    e[5] = _QUEUED
                    e[1] = min(int(e[1]), self.timing.max_retries)
                    retry.append(key)
                    next_at[gk] = now + 1.1 / paces[gk]
                    return True
            return False

        def paced_send() -> bool:
            return bool(retry) or can_send()

        while not self._stop and clock() < deadline:
            pending = any(flights.get(k) is not None for keys in by_group.values() for k in keys)
            if not pending:
                break
            pump(paced_send)
            if clock() < deadline and any(by_group.values()):
                soonest = min(next_at[gk] for gk, keys in by_group.items() if keys)
                pause = min(max(soonest - clock(), 0.0), max(deadline - clock(), 0.0))
                if pause > 0:
                    time.sleep(min(pause, 0.05))
