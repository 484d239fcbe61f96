"""The engines' hot path: packet templates patched per probe, and one-call reply parsing.

A template is built once per (source, destination, probe kind) with the codecs of this
package; rendering a probe then costs a few integer operations: the transport checksum is
the template's precomputed partial sum plus the changing words (ports, sequence numbers),
folded (RFC 1071 sums are order-independent, so this is exact, not an approximation).

:func:`parse_reply` reads a received IPv4/IPv6 packet into a flat :class:`Reply` that
names the *probe* it answers (target address, target port, our port) whatever the reply
is: a TCP segment, a UDP datagram, an ICMP/ICMPv6 error quoting the probe, or an
echo/timestamp reply. It never raises on malformed input: it returns ``None``.
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple

from portscope.packets.csum import ones_sum, pack_address, pseudo_header_sum
from portscope.packets.ip import IPv4, IPv6
from portscope.packets.tcp import TCPOption, encode_options

# Reply kinds
K_TCP = 1
K_UDP = 2
K_ICMP_ERROR = 3  # ICMP/ICMPv6 error quoting one of our probes
K_ECHO_REPLY = 4
K_TIMESTAMP_REPLY = 5
K_ICMP_OTHER = 6

_TCPH = struct.Struct("!HHIIHHHH")
_U16 = struct.Struct("!H")
_HH = struct.Struct("!HH")
_HHII = struct.Struct("!HHII")
_V4 = struct.Struct("!BxxxHxxBB2x4s4s")  # vihl, ident, ttl, proto, src, dst
_V6 = struct.Struct("!4xHBB16s16s")  # plen, next header, hop limit, src, dst


class Reply(NamedTuple):
    """What a received packet says about one probe."""

    kind: int  # K_TCP, K_UDP, K_ICMP_ERROR, K_ECHO_REPLY, K_TIMESTAMP_REPLY, K_ICMP_OTHER
    target: bytes  # the probe's destination (packed)
    proto: int  # the probe's protocol (6, 17, 1, 58)
    port: int  # the probe's destination port (0 for ICMP probes)
    our_port: int  # the probe's source port (ICMP probes: the echo identifier)
    seq: int  # TCP: the reply's seq; quoted TCP: the probe's seq; echo: sequence number
    ack: int  # TCP: the reply's ack; quoted IPv4: the probe's IP ident
    flags: int  # TCP flags
    window: int  # TCP window
    icmp_type: int  # for K_ICMP_*: the ICMP type (ICMPv6 types for IPv6)
    icmp_code: int
    responder: bytes  # who sent the reply (a router for some ICMP errors)
    ttl: int  # TTL / hop limit of the reply
    payload: bytes  # UDP payload; ICMP timestamp body


def _fold(s: int) -> int:
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return s


class TcpTemplate:
    """A TCP probe from *src* to *dst* (IPv4 with its header, or IPv6 with its header).

    ``render(sport, dport, seq, ack)`` returns the whole IP packet. IPv4 packets leave the
    identification and header checksum for the kernel to fill (IP_HDRINCL semantics).
    """

    __slots__ = ("_base", "_base0", "_head", "_opts", "_tail_flags", "family", "pack")

    def __init__(self, src: str, dst: str, flags: int, *, window: int = 1024,
                 options: tuple[TCPOption, ...] = (), ttl: int = 64, ident: int = 0) -> None:
        opts = encode_options(options)
        seg_len = 20 + len(opts)
        s, d = pack_address(src), pack_address(dst)
        if len(s) != len(d):
            raise ValueError("source and destination of different families")
        self.family = 4 if len(s) == 4 else 6
        if self.family == 4:
            self._head = IPv4(src, dst, 6, ttl=ttl, ident=ident).encode()
            self._head = self._head[:2] + (20 + seg_len).to_bytes(2, "big") + \
                self._head[4:10] + b"\x00\x00" + self._head[12:]
        else:
            self._head = IPv6(src, dst, 6, hop_limit=ttl).encode()
            self._head = self._head[:4] + seg_len.to_bytes(2, "big") + self._head[6:]
        offset_flags = ((5 + len(opts) // 4) << 12) | (flags & 0x1FF)
        self._tail_flags = (offset_flags, window)
        self._opts = opts
        # constant part of the checksum: pseudo-header, offset/flags, window, options
        self._base = pseudo_header_sum(s, d, 6, seg_len) + offset_flags + window + \
            ones_sum(opts)
        # the same without the destination's words (retarget() adds another destination's)
        self._base0 = pseudo_header_sum(s, bytes(len(d)), 6, seg_len) + offset_flags + \
            window + ones_sum(opts)
        # the TCP header and the options in one pack call (the engine's hot path)
        self.pack = struct.Struct(f"!HHIIHHHH{len(opts)}s").pack

    def retarget(self, dst: bytes) -> tuple[bytes, int]:
        """(IP header, checksum base) of this probe sent to *dst* (packed, same family)
        instead: a sweep renders millions of destinations from one template per source."""
        if self.family == 4:
            if len(dst) != 4:
                raise ValueError("not an IPv4 address")
            x = int.from_bytes(dst, "big")
            return self._head[:16] + dst, self._base0 + (x >> 16) + (x & 0xFFFF)
        if len(dst) != 16:
            raise ValueError("not an IPv6 address")
        return self._head[:24] + dst, self._base0 + sum(struct.unpack("!8H", dst))

    @property
    def head(self) -> bytes:
        """The IP header (constant for this source, destination and probe size)."""
        return self._head

    @property
    def fields(self) -> tuple[int, int, int, bytes]:
        """(checksum base, offset/flags word, window, options) for inline rendering:
        checksum = ~fold(base + sport + dport + seq words + ack words)."""
        return self._base, self._tail_flags[0], self._tail_flags[1], self._opts

    def render(self, sport: int, dport: int, seq: int, ack: int = 0) -> bytes:
        s = self._base + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + \
            (ack & 0xFFFF)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        of, win = self._tail_flags
        return self._head + self.pack(sport, dport, seq, ack, of, win, ~s & 0xFFFF, 0,
                                      self._opts)


class UdpTemplate:
    """A UDP probe from *src* to *dst*; ``render(sport, dport, payload)``."""

    __slots__ = ("_dst", "_head", "_src", "family")

    def __init__(self, src: str, dst: str, *, ttl: int = 64) -> None:
        self._src, self._dst = pack_address(src), pack_address(dst)
        self.family = 4 if len(self._src) == 4 else 6
        if self.family == 4:
            self._head = IPv4(src, dst, 17, ttl=ttl).encode()
        else:
            self._head = IPv6(src, dst, 17, hop_limit=ttl).encode()

    def render(self, sport: int, dport: int, payload: bytes = b"", ident: int = 0) -> bytes:
        length = 8 + len(payload)
        s = pseudo_header_sum(self._src, self._dst, 17, length) + sport + dport + length
        if payload:
            s = ones_sum(payload, s)
        s = _fold(s)
        csum = ~s & 0xFFFF or 0xFFFF
        h = self._head
        if self.family == 4:
            ip = h[:2] + (20 + length).to_bytes(2, "big") + ident.to_bytes(2, "big") + \
                h[6:10] + b"\x00\x00" + h[12:]
        else:
            ip = h[:4] + length.to_bytes(2, "big") + h[6:]
        return ip + struct.pack("!HHHH", sport, dport, length, csum) + payload


def icmp_probe(src: str, dst: str, message: bytes, *, ttl: int = 64) -> bytes:
    """A whole IP packet carrying an already encoded ICMP/ICMPv6 *message*."""
    if ":" in dst:
        return IPv6(src, dst, 58, hop_limit=ttl).encode(message)
    return IPv4(src, dst, 1, ttl=ttl).encode(message)


def parse_reply(buf: bytes | bytearray | memoryview, n: int | None = None) -> Reply | None:
    """Parse the first *n* bytes of *buf* (a whole IP packet) into a :class:`Reply`."""
    if n is None:
        n = len(buf)
    if n < 20:
        return None
    try:
        v = buf[0] >> 4
        if v == 4:
            vihl, _ident, ttl, proto, src, _dst = _V4.unpack_from(buf)
            off = (vihl & 0xF) * 4
            end = min(n, _U16.unpack_from(buf, 2)[0])
            if off < 20 or end < off:
                return None
            if _U16.unpack_from(buf, 6)[0] & 0x1FFF:  # a non-first fragment
                return None
        elif v == 6:
            if n < 40:
                return None
            plen, proto, ttl, src, _dst = _V6.unpack_from(buf)
            off = 40
            end = min(n, 40 + plen)
            while proto in (0, 43, 60, 44):  # hop-by-hop, routing, dest opts, fragment
                if off + 8 > end:
                    return None
                if proto == 44 and _U16.unpack_from(buf, off + 2)[0] >> 3:
                    return None
                nxt = buf[off]
                off += 8 if proto == 44 else (buf[off + 1] + 1) * 8
                proto = nxt
        else:
            return None
        if proto == 6:
            if end - off < 20:
                return None
            sport, dport, seq, ack, of, win, _c, _u = _TCPH.unpack_from(buf, off)
            return Reply(K_TCP, src, 6, sport, dport, seq, ack, of & 0x1FF, win, 0, 0, src,
                         ttl, b"")
        if proto == 17:
            if end - off < 8:
                return None
            sport, dport = _HH.unpack_from(buf, off)
            return Reply(K_UDP, src, 17, sport, dport, 0, 0, 0, 0, 0, 0, src, ttl,
                         bytes(buf[off + 8:end]))
        if proto == 1 or proto == 58:
            if end - off < 8:
                return None
            typ, code = buf[off], buf[off + 1]
            if (proto == 1 and typ in (3, 4, 5, 11, 12)) or (proto == 58 and typ < 128):
                return _quoted(buf, off + 8, end, typ, code, src, ttl, proto)
            ident, seqno = _HH.unpack_from(buf, off + 4)
            if (proto == 1 and typ == 0) or (proto == 58 and typ == 129):
                return Reply(K_ECHO_REPLY, src, proto, 0, ident, seqno, 0, 0, 0, typ, code,
                             src, ttl, b"")
            if proto == 1 and typ == 14:
                return Reply(K_TIMESTAMP_REPLY, src, proto, 0, ident, seqno, 0, 0, 0, typ,
                             code, src, ttl, bytes(buf[off + 8:end]))
            return Reply(K_ICMP_OTHER, src, proto, 0, ident, seqno, 0, 0, 0, typ, code, src,
                         ttl, bytes(buf[off + 8:end]))
    except (struct.error, IndexError):
        return None
    return None


def _quoted(buf: bytes | bytearray | memoryview, q: int, end: int, typ: int, code: int,
            responder: bytes, ttl: int, icmp_proto: int) -> Reply | None:
    if end - q < 20:
        return None
    v = buf[q] >> 4
    ident = 0
    if v == 4:
        vihl, ident, _t, proto, _s, dst = _V4.unpack_from(buf, q)
        t = q + (vihl & 0xF) * 4
        if _U16.unpack_from(buf, q + 6)[0] & 0x1FFF:
            return None
    elif v == 6:
        if end - q < 40:
            return None
        _plen, proto, _h, _s, dst = _V6.unpack_from(buf, q)
        t = q + 40
        while proto in (0, 43, 60, 44):
            if t + 8 > end:
                return None
            nxt = buf[t]
            t += 8 if proto == 44 else (buf[t + 1] + 1) * 8
            proto = nxt
    else:
        return None
    if proto in (6, 17, 132):
        if end - t < 4:
            return None
        sport, dport = _HH.unpack_from(buf, t)
        seq = int.from_bytes(buf[t + 4:t + 8], "big") if proto == 6 and end - t >= 8 else 0
        return Reply(K_ICMP_ERROR, dst, proto, dport, sport, seq, ident, 0, 0, typ, code,
                     responder, ttl, b"")
    if proto in (1, 58):
        if end - t < 8:
            return None
        qident, qseq = _HH.unpack_from(buf, t + 4)
        return Reply(K_ICMP_ERROR, dst, proto, 0, qident, qseq, ident, 0, 0, typ, code,
                     responder, ttl, b"")
    return Reply(K_ICMP_ERROR, dst, proto, 0, 0, 0, ident, 0, 0, typ, code, responder, ttl,
                 b"")


class Cookie:
    """Keyed 32-bit probe cookies (stateless reply validation, as zmap and masscan do).

    ``cookie(target, port, our_port)`` binds a probe's identity to a per-run secret: a
    reply is ours only if it carries the cookie of the probe it claims to answer (the SYN's
    seq comes back as ack - 1, ICMP errors quote it). The key is random per run, so a reply
    to an earlier run, or someone else's traffic, does not validate.

    Cost matters (one cookie per probe and per reply): the target part is a keyed BLAKE2b
    of the address (computed once per target), the port parts are entries of two secret
    tables expanded from the key (SHAKE-256), so a cookie is two lookups and two XORs.
    An off-path sender who does not know the key has to guess 32 random bits.
    """

    __slots__ = ("_byte_table", "_key", "_last", "_last_hash", "_prefixes", "port_table",
                 "sport_table")

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("cookie key must be 16..64 bytes")
        self._key = key
        self._last = b""
        self._last_hash = 0
        stream = hashlib.shake_256(b"portscope-cookie-tables:" + key).digest(4 * (65536 + 512))
        words = struct.unpack(f"<{65536 + 512}I", stream)
        self.port_table: list[int] = list(words[:65536])
        self.sport_table: list[int] = list(words[65536:65792])
        self._byte_table: list[int] = list(words[65792:])
        self._prefixes: dict[bytes, int] = {}

    def target_hash(self, target: bytes) -> int:
        """The target's part: a keyed hash of all but the last byte (cached: a sweep
        visits each /24 many times) mixed with a secret table entry for the last byte."""
        if target != self._last:
            prefix = target[:-1]
            h = self._prefixes.get(prefix)
            if h is None:
                if len(self._prefixes) >= 4096:
                    self._prefixes.clear()
                h = self._prefixes[prefix] = int.from_bytes(
                    hashlib.blake2b(prefix, key=self._key, digest_size=4).digest(), "big")
            self._last_hash = h ^ self._byte_table[target[-1]]
            self._last = target
        return self._last_hash

    def __call__(self, target: bytes, port: int, our_port: int) -> int:
        th = self._last_hash if target == self._last else self.target_hash(target)
        return th ^ self.port_table[port & 0xFFFF] ^ self.sport_table[our_port & 0xFF]
