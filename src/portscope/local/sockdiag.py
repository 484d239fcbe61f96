"""Codec of Linux's NETLINK_SOCK_DIAG inet dump (what ``ss`` uses; pure: bytes in and out).

Over /proc/net this adds what ``ss`` shows and /proc hides: whether an IPv6 wildcard socket
is IPv6-only (``[::]:22``) or also takes IPv4 (``*:22``), and the device a socket is bound
to (``%eth0``). The engine sends :func:`dump_request` on an ``AF_NETLINK`` socket and
feeds every datagram received to :func:`parse_dump` until it says ``done``.

Malformed or truncated messages are skipped and counted; nothing here raises on kernel
(or hostile) input.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from portscope.model import Family, ListeningSocket, Protocol

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x01
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
INET_DIAG_SKV6ONLY = 11

AF_INET = 2
AF_INET6 = 10
IPPROTO_TCP = 6
IPPROTO_UDP = 17
TCP_LISTEN = 10
TCP_CLOSE = 7

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ = struct.Struct("=BBBxI")  # family, protocol, ext, pad, states
_SOCKID = struct.Struct("!HH16s16s")  # sport, dport, src, dst (then if, cookie: host order)
_SOCKID_TAIL = struct.Struct("=III")  # if, cookie[2]
_MSG_HEAD = struct.Struct("=BBBB")  # family, state, timer, retrans
_MSG_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_RTA = struct.Struct("=HH")
MSG_LEN = _MSG_HEAD.size + _SOCKID.size + _SOCKID_TAIL.size + _MSG_TAIL.size  # 72


def _align(n: int) -> int:
    return (n + 3) & ~3


def dump_request(protocol: Protocol | str, family: Family | str, *, seq: int = 1) -> bytes:
    """The dump request of one (protocol, family): TCP in LISTEN, UDP unconnected."""
    proto = Protocol(protocol)
    af = AF_INET if Family(family) is Family.IPV4 else AF_INET6
    ipproto = IPPROTO_TCP if proto is Protocol.TCP else IPPROTO_UDP
    states = 1 << (TCP_LISTEN if proto is Protocol.TCP else TCP_CLOSE)
    body = (_REQ.pack(af, ipproto, 0, states)
            + _SOCKID.pack(0, 0, bytes(16), bytes(16)) + _SOCKID_TAIL.pack(0, 0xFFFFFFFF,
                                                                           0xFFFFFFFF))
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY,
                          NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


@dataclass(frozen=True, slots=True)
class DiagSocket:
    family: Family
    state: int
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    ifindex: int
    uid: int
    inode: int
    v6only: bool | None = None

    def to_socket(self, protocol: Protocol | str, interface: str | None = None) -> ListeningSocket:
        proto = Protocol(protocol)
        return ListeningSocket.make(
            proto, self.local_address, self.local_port, uid=self.uid,
            inode=self.inode or None, v6only=self.v6only if self.family is Family.IPV6 else None,
            interface=interface, state="listen" if proto is Protocol.TCP else "unconn")


@dataclass
class DumpResult:
    sockets: list[DiagSocket] = field(default_factory=list)
    done: bool = False
    error: int = 0  # errno from an NLMSG_ERROR (e.g. ENOENT: no udp_diag module)
    skipped: int = 0


def _address(raw: bytes, af: int) -> str:
    if af == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    ip6 = ipaddress.IPv6Address(raw)
    if ip6.ipv4_mapped is not None:
        return f"::ffff:{ip6.ipv4_mapped}"
    return str(ip6)


def parse_message(payload: bytes) -> DiagSocket | None:
    """One ``inet_diag_msg`` with its attributes; None if malformed."""
    if len(payload) < MSG_LEN:
        return None
    af, state, _timer, _retrans = _MSG_HEAD.unpack_from(payload, 0)
    if af not in (AF_INET, AF_INET6):
        return None
    off = _MSG_HEAD.size
    sport, dport, src, dst = _SOCKID.unpack_from(payload, off)
    off += _SOCKID.size
    ifindex, _c0, _c1 = _SOCKID_TAIL.unpack_from(payload, off)
    off += _SOCKID_TAIL.size
    _exp, _rq, _wq, uid, inode = _MSG_TAIL.unpack_from(payload, off)
    off = MSG_LEN
    v6only: bool | None = None
    while off + _RTA.size <= len(payload):
        rlen, rtype = _RTA.unpack_from(payload, off)
        if rlen < _RTA.size or off + rlen > len(payload):
            break  # truncated attribute: keep what we have
        if rtype == INET_DIAG_SKV6ONLY and rlen >= _RTA.size + 1:
            v6only = bool(payload[off + _RTA.size])
        off += _align(rlen)
    return DiagSocket(
        family=Family.IPV4 if af == AF_INET else Family.IPV6, state=state,
        local_address=_address(src, af), local_port=sport,
        remote_address=_address(dst, af), remote_port=dport,
        ifindex=ifindex, uid=uid, inode=inode, v6only=v6only)


def parse_dump(data: bytes, result: DumpResult | None = None, *, seq: int | None = None
               ) -> DumpResult:
    """Add the netlink messages of one received datagram to *result*."""
    res = result if result is not None else DumpResult()
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            res.skipped += 1
            break
        body = data[off + _NLMSGHDR.size: off + length]
        off += _align(length)
        if seq is not None and mseq != seq:
            res.skipped += 1
            continue
        if mtype == NLMSG_DONE:
            res.done = True
            break
        if mtype == NLMSG_ERROR:
            code = struct.unpack_from("=i", body, 0)[0] if len(body) >= 4 else -1
            if code != 0:
                res.error = -code
                res.done = True
                break
            continue
        if mtype == NLMSG_NOOP:
            continue
        if mtype != SOCK_DIAG_BY_FAMILY:
            res.skipped += 1
            continue
        msg = parse_message(body)
        if msg is None:
            res.skipped += 1
        else:
            res.sockets.append(msg)
    return res


def encode_message(sock: DiagSocket, *, seq: int = 1, with_v6only: bool = True) -> bytes:
    """The kernel's reply for *sock* (tests and fakes)."""
    af = AF_INET if sock.family is Family.IPV4 else AF_INET6

    def packed(addr: str) -> bytes:
        ip = ipaddress.ip_address(addr)
        return ip.packed.ljust(16, b"\0")

    body = (_MSG_HEAD.pack(af, sock.state, 0, 0)
            + _SOCKID.pack(sock.local_port, sock.remote_port, packed(sock.local_address),
                           packed(sock.remote_address))
            + _SOCKID_TAIL.pack(sock.ifindex, 0, 0)
            + _MSG_TAIL.pack(0, 0, 0, sock.uid, sock.inode))
    if with_v6only and sock.v6only is not None:
        attr = _RTA.pack(_RTA.size + 1, INET_DIAG_SKV6ONLY) + bytes([int(sock.v6only)])
        body += attr.ljust(_align(len(attr)), b"\0")
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, 2, seq, 0) + body


def encode_done(*, seq: int = 1) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + 4, NLMSG_DONE, 2, seq, 0) + b"\0\0\0\0"


def encode_error(errno_: int, *, seq: int = 1) -> bytes:
    body = struct.pack("=i", -errno_) + _NLMSGHDR.pack(_NLMSGHDR.size, SOCK_DIAG_BY_FAMILY,
                                                       0, seq, 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), NLMSG_ERROR, 0, seq, 0) + body
