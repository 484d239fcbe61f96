"""From the replies to the OS probes to a signature: a flat dict of features (pure).

An :class:`Observation` is one probe and the raw IP packet that answered it (or None),
with send and receive times; :func:`extract` decodes them with ``portscope.packets`` and
returns the features :mod:`portscope.fingerprint.kb` scores. Malformed replies are data:
a feature that cannot be read is simply absent.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from portscope.fingerprint.probes import ACK_VALUE, ECHO_CODE, UDP_PAYLOAD, Probe
from portscope.packets import decode_icmp, decode_ip, decode_tcp, format_options
from portscope.packets.icmp import DEST_UNREACH, ECHO_REPLY, UNREACH_PORT
from portscope.packets.ip import FLAG_DF, IPv4, Packet
from portscope.packets.tcp import TCP, TCPFlags

INITIAL_TTLS = (32, 64, 128, 255)
TS_RATES = (2, 100, 128, 200, 250, 1000)


@dataclass(frozen=True, slots=True)
class Observation:
    probe: str
    sent: float  # seconds, any monotonic clock
    received: float | None = None
    reply: bytes | None = None  # the whole IP packet that answered

    def to_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "sent": self.sent, "received": self.received,
                "reply": self.reply.hex() if self.reply is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observation:
        reply = d.get("reply")
        return cls(str(d["probe"]), float(d["sent"]),
                   float(d["received"]) if d.get("received") is not None else None,
                   bytes.fromhex(reply) if reply else None)


def initial_ttl(observed: int) -> int:
    """The initial TTL a reply most likely started with (the next common value up)."""
    for t in INITIAL_TTLS:
        if observed <= t:
            return t
    return 255


def ops_order(ops: str) -> str:
    """``M5B4ST11NW7`` -> ``MSTNW`` (option kinds in order, values dropped)."""
    return "".join(ch for ch in ops if ch in "MSTNWL")


def classify_ids(ids: Sequence[int]) -> str | None:
    """``zero``, ``constant``, ``incremental`` (small positive steps, wrapping) or
    ``random`` for a sequence of IP identifications."""
    if len(ids) < 2:
        return None
    if all(i == 0 for i in ids):
        return "zero"
    if len(set(ids)) == 1:
        return "constant"
    steps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(ids)]
    if all(0 < s <= 2000 for s in steps):
        return "incremental"
    return "random"


def ts_rate(samples: Sequence[tuple[float, int]]) -> float | None:
    """Timestamp ticks per second from (receive time, tsval) pairs."""
    pts = sorted(samples)
    rates = []
    for (t1, v1), (t2, v2) in itertools.pairwise(pts):
        dt = t2 - t1
        if dt >= 0.05:
            rates.append(((v2 - v1) & 0xFFFFFFFF) / dt)
    return statistics.median(rates) if rates else None


def nearest_rate(rate: float) -> int | str:
    for r in TS_RATES:
        if abs(rate - r) <= 0.25 * r:
            return r
    return "other"


def _ack_kind(ack: int, seq: int) -> str:
    if ack == (seq + 1) & 0xFFFFFFFF:
        return "seq+1"
    if ack == seq:
        return "seq"
    if ack == 0:
        return "zero"
    return "other"


def extract(observations: Iterable[Observation], probes: Sequence[Probe]) -> dict[str, Any]:
    """The features of one host's replies (absent when not learned)."""
    by_name = {p.name: p for p in probes}
    replies: dict[str, tuple[Observation, Packet]] = {}
    for ob in observations:
        if ob.reply is None:
            continue
        pkt = decode_ip(ob.reply)
        if pkt is not None and isinstance(pkt.header, IPv4):
            replies[ob.probe] = (ob, pkt)
    f: dict[str, Any] = {"answered": sorted(replies)}

    def tcp_of(name: str) -> tuple[Packet, TCP] | None:
        got = replies.get(name)
        if got is None or got[1].proto != 6:
            return None
        seg = decode_tcp(got[1].payload)
        return (got[1], seg) if seg is not None else None

    def df(pkt: Packet) -> bool:
        return bool(isinstance(pkt.header, IPv4) and pkt.header.flags & FLAG_DF)

    tcp_ids: list[int] = []
    ts_samples: list[tuple[float, int]] = []
    synack = None
    for name in ("S1", "S2", "S3"):
        got = tcp_of(name)
        if got is None:
            continue
        pkt, seg = got
        if isinstance(pkt.header, IPv4):
            tcp_ids.append(pkt.header.ident)
        if seg.flags & (TCPFlags.SYN | TCPFlags.ACK) == TCPFlags.SYN | TCPFlags.ACK:
            synack = synack or (pkt, seg)
            ts = seg.timestamps
            rx = replies[name][0].received
            if ts is not None and rx is not None:
                ts_samples.append((rx, ts[0]))
    if synack is not None:
        pkt, seg = synack
        f["ttl"] = initial_ttl(pkt.ttl)
        f["hops"] = f["ttl"] - pkt.ttl
        f["syn_df"] = df(pkt)
        f["syn_window"] = seg.window
        ops = format_options(seg.options)
        f["syn_ops"] = ops
        f["syn_order"] = ops_order(ops)
        if seg.mss is not None:
            f["syn_mss"] = seg.mss
        if seg.wscale is not None:
            f["syn_wscale"] = seg.wscale
        f["syn_ts"] = seg.timestamps is not None
        f["syn_sack"] = "S" in f["syn_order"]
        if seg.timestamps is not None:
            if seg.timestamps[0] == 0:
                f["ts_hz"] = 0
            else:
                rate = ts_rate(ts_samples)
                if rate is not None:
                    f["ts_rate"] = round(rate, 1)
                    f["ts_hz"] = nearest_rate(rate)
                other = tcp_of("S4")
                s4 = other[1].timestamps if other is not None else None
                if s4 is not None and ts_samples:
                    # the clock cannot have moved more than a minute at 1 kHz between the
                    # probes: a bigger jump is a different, random offset
                    jump = min(min((s4[0] - v) & 0xFFFFFFFF, (v - s4[0]) & 0xFFFFFFFF)
                               for _t, v in ts_samples)
                    f["ts_offset"] = "per-connection" if jump > 60_000 else "global"
        else:
            f["ts_hz"] = 0
    elif any(tcp_of(n) for n in ("S1", "S2", "S3")):
        f["open_port_answer"] = "rst"  # the "open" port was not open after all

    got = tcp_of("S4")
    if got is not None and isinstance(got[0].header, IPv4):
        tcp_ids.append(got[0].header.ident)

    got = tcp_of("ECN")
    if got is not None:
        pkt, seg = got
        tcp_ids.append(pkt.header.ident if isinstance(pkt.header, IPv4) else 0)
        if seg.flags & TCPFlags.SYN:
            ece, cwr = bool(seg.flags & TCPFlags.ECE), bool(seg.flags & TCPFlags.CWR)
            f["ecn"] = "both" if ece and cwr else "ece" if ece else "none"
        else:
            f["ecn"] = "rst"
    elif "ECN" in by_name:
        f["ecn"] = "silent"

    got = tcp_of("A_OPEN")
    if got is not None:
        pkt, seg = got
        tcp_ids.append(pkt.header.ident if isinstance(pkt.header, IPv4) else 0)
        f["rst_open"] = bool(seg.flags & TCPFlags.RST)
        f["rst_open_window"] = seg.window
        f["rst_open_df"] = df(pkt)
        probe = by_name.get("A_OPEN")
        if probe is not None:
            f["rst_open_seq"] = "ack" if seg.seq == ACK_VALUE else \
                "zero" if seg.seq == 0 else "other"

    got = tcp_of("S_CLOSED")
    if got is not None:
        pkt, seg = got
        tcp_ids.append(pkt.header.ident if isinstance(pkt.header, IPv4) else 0)
        f["closed_rst"] = bool(seg.flags & TCPFlags.RST)
        f["closed_window"] = seg.window
        f["closed_df"] = df(pkt)
        f["closed_ttl"] = initial_ttl(pkt.ttl)
        probe = by_name.get("S_CLOSED")
        if probe is not None:
            f["closed_ack"] = _ack_kind(seg.ack, probe.seq)
        f.setdefault("ttl", f["closed_ttl"])
        f.setdefault("hops", f["closed_ttl"] - pkt.ttl)
    elif "S_CLOSED" in by_name:
        f["closed_rst"] = False

    got = tcp_of("A_CLOSED")
    if got is not None:
        _pkt, seg = got
        f["closed_ack_rst_seq"] = "ack" if seg.seq == ACK_VALUE else \
            "zero" if seg.seq == 0 else "other"

    got = tcp_of("FPU_CLOSED")
    f["fpu_closed"] = "rst" if got is not None and got[1].flags & TCPFlags.RST else \
        ("other" if got is not None else "silent")

    ipid = classify_ids(tcp_ids)
    if ipid is not None:
        f["ipid_tcp"] = ipid

    echo = replies.get("IE")
    if echo is not None and echo[1].proto == 1:
        msg = decode_icmp(echo[1].payload)
        if msg is not None and msg.type == ECHO_REPLY:
            f["echo"] = True
            f["echo_df"] = df(echo[1])
            f["echo_ttl"] = initial_ttl(echo[1].ttl)
            f["echo_code"] = "same" if msg.code == ECHO_CODE else \
                "zero" if msg.code == 0 else "other"
            if isinstance(echo[1].header, IPv4):
                f["echo_ipid_zero"] = echo[1].header.ident == 0
            f.setdefault("ttl", f["echo_ttl"])
    elif "IE" in by_name:
        f["echo"] = False

    unreach = replies.get("U1")
    if unreach is not None and unreach[1].proto == 1:
        msg = decode_icmp(unreach[1].payload)
        if msg is not None and msg.type == DEST_UNREACH and msg.code == UNREACH_PORT:
            pkt = unreach[1]
            f["unreach"] = True
            f["unreach_df"] = df(pkt)
            f["unreach_ttl"] = initial_ttl(pkt.ttl)
            if isinstance(pkt.header, IPv4):
                f["unreach_len"] = pkt.header.total_length
            quoted = decode_ip(msg.body, truncated_ok=True)
            if quoted is not None:
                # bytes of our UDP payload quoted back (8 = only the UDP header)
                f["unreach_quote"] = min(len(quoted.payload), 8 + len(UDP_PAYLOAD))
            f.setdefault("ttl", f["unreach_ttl"])
    elif "U1" in by_name:
        f["unreach"] = False
    return f
