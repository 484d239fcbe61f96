"""OS detection (``-O``): send the probes of :mod:`portscope.fingerprint.probes` with raw
sockets, collect the replies, and let the pure fingerprint code extract and score.

Needs raw sockets (root or CAP_NET_RAW). IPv4 targets; hosts are fingerprinted in
batches, each batch with the same schedule (S1, S2, S3 100 ms apart, then the rest), and
replies are matched by source address and ports (or ICMP identifier / quoted datagram).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from portscope.engine.rawsock import RawIO, raw_available
from portscope.errors import PermissionProblem
from portscope.fingerprint import kb as kbmod
from portscope.fingerprint.probes import PROBE_SPACING, Probe, build_probes, match_tcp
from portscope.fingerprint.signature import Observation, extract
from portscope.model import Host, HostStatus, OSGuess, PortState, Protocol, ScanRun
from portscope.packets import decode_icmp, decode_ip, decode_tcp, decode_udp
from portscope.packets.icmp import DEST_UNREACH, ECHO_REPLY

log = logging.getLogger("portscope.osdetect")

BATCH = 64
MIN_ACCURACY = 50  # below this no guess is reported (the evidence still is)


@dataclass(frozen=True)
class OSOptions:
    wait: float = 1.5  # after the last probe, how long replies are awaited
    limit: int = 5  # guesses kept in the evidence


@dataclass
class _Target:
    address: str
    probes: list[Probe]
    observations: dict[str, Observation]
    open_port: int | None
    closed_port: int
    closed_known: bool


def choose_ports(host: Host) -> tuple[int | None, int, bool]:
    """(an open TCP port, a closed TCP port, whether the closed one was seen closed)."""
    open_port = next((p.port for p in host.ports
                      if p.protocol is Protocol.TCP and p.state is PortState.OPEN), None)
    closed = next((p.port for p in host.ports
                   if p.protocol is Protocol.TCP and p.state is PortState.CLOSED), None)
    if closed is not None:
        return open_port, closed, True
    used = {p.port for p in host.ports}
    rng = random.Random(host.address)
    port = rng.randrange(40000, 60000)
    while port in used:
        port = rng.randrange(40000, 60000)
    return open_port, port, False


def _match(targets: dict[str, _Target], data: bytes) -> tuple[_Target, str] | None:
    pkt = decode_ip(data)
    if pkt is None:
        return None
    t = targets.get(pkt.src)
    if t is None:
        return None
    if pkt.proto == 6:
        seg = decode_tcp(pkt.payload)
        if seg is None:
            return None
        probe = match_tcp(t.probes, seg.sport, seg.dport, seg.ack)
        return (t, probe.name) if probe is not None else None
    elif pkt.proto == 1:
        msg = decode_icmp(pkt.payload)
        if msg is None:
            return None
        for p in t.probes:
            if p.name == "IE" and msg.type == ECHO_REPLY and msg.ident == p.ident:
                return t, p.name
            if p.name == "U1" and msg.type == DEST_UNREACH:
                quoted = decode_ip(msg.body, truncated_ok=True)
                if quoted is not None and quoted.proto == 17:
                    dgram = decode_udp(quoted.payload, truncated_ok=True)
                    if dgram is not None and dgram.sport == p.sport and dgram.dport == p.dport:
                        return t, p.name
    return None


def _fingerprint_batch(io: RawIO, hosts: list[Host], options: OSOptions) -> dict[str, Any]:
    targets: dict[str, _Target] = {}
    rng = random.Random()
    for h in hosts:
        src = io.source_for(h.address)
        if src is None or ":" in src:
            continue
        open_port, closed, known = choose_ports(h)
        probes = build_probes(src, h.address, open_port or closed, closed,
                              base_port=io.port_base, seq=rng.getrandbits(32),
                              ip_id=rng.getrandbits(16), tsval=rng.getrandbits(31),
                              icmp_ident=rng.getrandbits(16))
        if open_port is None:  # no open port: only the closed-port and ICMP probes
            probes = [p for p in probes if p.name in ("S_CLOSED", "A_CLOSED", "FPU_CLOSED",
                                                      "IE", "U1")]
        targets[h.address] = _Target(h.address, probes, {}, open_port, closed, known)
    if not targets:
        return {}
    # schedule: S1, S2, S3 at 0, 0.1, 0.2 s; everything else at 0.3 s
    schedule: list[tuple[float, _Target, Probe]] = []
    for t in targets.values():
        for p in t.probes:
            at = {"S1": 0.0, "S2": PROBE_SPACING, "S3": 2 * PROBE_SPACING}.get(
                p.name, 3 * PROBE_SPACING)
            schedule.append((at, t, p))
    schedule.sort(key=lambda x: x[0])
    buf = bytearray(65536)
    t0 = time.monotonic()
    end = t0 + 3 * PROBE_SPACING + options.wait
    i = 0
    while True:
        now = time.monotonic()
        while i < len(schedule) and schedule[i][0] <= now - t0:
            _at, t, p = schedule[i]
            err = io.send(p.packet, t.address)
            t.observations[p.name] = Observation(p.name, time.monotonic())
            if err:
                log.debug("send %s to %s: errno %s", p.name, t.address, err)
            i += 1
        all_answered = i >= len(schedule) and all(
            all(ob.reply is not None for ob in t.observations.values())
            for t in targets.values())
        if now >= end or all_answered:
            break
        next_send = t0 + schedule[i][0] if i < len(schedule) else end
        timeout = max(0.0, min(next_send, end) - now)
        ready, _, _ = select.select([io.fileno()], [], [], timeout)
        if not ready:
            continue
        while True:
            n = io.recv_into(buf)
            if n <= 0:
                break
            data = bytes(buf[:n])
            hit = _match(targets, data)
            if hit is None:
                continue
            target, name = hit
            ob = target.observations.get(name)
            if ob is not None and ob.reply is None:
                target.observations[name] = replace(ob, received=time.monotonic(), reply=data)
    return {addr: t for addr, t in targets.items()}


def guess(observations: list[Observation], probes: list[Probe], *, closed_known: bool,
          entries: list[kbmod.Entry] | None = None, limit: int = 5) -> OSGuess | None:
    """Features, ranking and the OSGuess of one host (pure; used by tests on recorded
    observations too)."""
    sig = extract(observations, probes)
    if not closed_known:
        for k in [k for k in sig if k.startswith("closed_") or k == "fpu_closed"]:
            sig.pop(k)  # the "closed" port was a guess: its answers say little
    if len(sig.get("answered", [])) == 0:
        return None
    ranked = kbmod.rank(sig, entries if entries is not None else kbmod.load())
    top = ranked[:limit]
    evidence = {"signature": sig,
                "guesses": [{"name": m.entry.name, "accuracy": m.accuracy,
                             "disagree": list(m.disagree)} for m in top]}
    best = top[0] if top else None
    if best is None or best.accuracy < MIN_ACCURACY:
        return OSGuess(name="unknown", accuracy=0, evidence=evidence)
    return OSGuess(name=best.entry.name, accuracy=best.accuracy, family=best.entry.family,
                   vendor=best.entry.vendor, cpe=best.entry.cpe, evidence=evidence)


def os_detect(run: ScanRun, options: OSOptions | None = None, *,
              on_host: Callable[[Host], None] | None = None,
              stopped: Callable[[], bool] | None = None) -> ScanRun:
    """Fingerprint every up IPv4 host of *run* and fill ``Host.os``. Raises
    :class:`PermissionProblem` without raw-socket privileges."""
    opts = options or OSOptions()
    problem = raw_available()
    if problem is not None:
        raise PermissionProblem(f"-O (OS detection) sends raw packets: {problem}")
    todo = [h for h in run.hosts if h.status is HostStatus.UP and
            ipaddress.ip_address(h.address).version == 4]
    results: dict[str, OSGuess | None] = {}
    io = RawIO(rcvbuf=4 << 20)
    try:
        for start in range(0, len(todo), BATCH):
            if stopped is not None and stopped():
                break
            batch = todo[start: start + BATCH]
            done = _fingerprint_batch(io, batch, opts)
            for h in batch:
                t = done.get(h.address)
                if t is None:
                    continue
                results[h.address] = guess(list(t.observations.values()), t.probes,
                                           closed_known=t.closed_known, limit=opts.limit)
    finally:
        io.close()
    hosts = []
    for h in run.hosts:
        g = results.get(h.address)
        nh = replace(h, os=g) if g is not None else h
        hosts.append(nh)
        if on_host is not None and h.address in results:
            on_host(nh)
    return replace(run, hosts=tuple(hosts))


def record(run: ScanRun, options: OSOptions | None = None) -> dict[str, dict[str, Any]]:
    """The raw observations per host (for tests/data/os fixtures)."""
    opts = options or OSOptions()
    todo = [h for h in run.hosts if h.status is HostStatus.UP]
    io = RawIO(rcvbuf=4 << 20)
    try:
        done = _fingerprint_batch(io, todo, opts)
    finally:
        io.close()
    out: dict[str, dict[str, Any]] = {}
    for addr, t in done.items():
        out[addr] = {"probes": [{"name": p.name, "packet": p.packet.hex(), "proto": p.proto,
                                 "sport": p.sport, "dport": p.dport, "seq": p.seq,
                                 "ident": p.ident} for p in t.probes],
                     "observations": [o.to_dict() for o in t.observations.values()],
                     "closed_known": t.closed_known}
    return out
