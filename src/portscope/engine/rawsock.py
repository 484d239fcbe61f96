"""Raw sockets: a sender (IP_HDRINCL raw sockets, the kernel routes and resolves the link
layer) and a receiver (an AF_PACKET socket with a classic BPF program, so the kernel hands
us only TCP/UDP packets to our source ports and ICMP, never our own outgoing packets).

Our source ports are reserved by binding plain TCP and UDP sockets to them: the kernel
never gives them to another connection, answers stray SYN/ACKs with a RST (which is what
closes the half-open connection of a SYN scan, as with nmap), and sends no ICMP port
unreachable back for UDP replies.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import socket
import struct
import threading

from portscope.errors import PermissionProblem

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
PACKET_OUTGOING = 4
SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4

# classic BPF opcodes
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS = 0x20, 0x28, 0x30
_LD_H_IND = 0x48
_LDX_B_MSH = 0xB1
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET_K = 0x06

Insn = tuple[int, int, int, int]

CAPABILITY_HELP = (
    "raw-packet scans need root or the CAP_NET_RAW capability. Either run as root, or "
    "grant the capability to the Python interpreter that runs portscope (it then applies "
    "to every script that interpreter runs, so prefer a dedicated venv): "
    "sudo setcap cap_net_raw,cap_net_admin+eip \"$(readlink -f .venv/bin/python3)\"")


def reply_filter(port_lo: int, port_hi: int) -> list[Insn]:
    """BPF program (cooked AF_PACKET, offset 0 = IP header): accept incoming ICMP/ICMPv6,
    and TCP/UDP whose destination port is in [port_lo, port_hi); drop the rest, our own
    outgoing packets and non-first IPv4 fragments."""
    prog: list[tuple[int, int, str | int, str | int]] = []
    labels: dict[str, int] = {}

    def op(code: int, k: int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        prog.append((code, k & 0xFFFFFFFF, jt, jf))

    def label(name: str) -> None:
        labels[name] = len(prog)

    op(_LD_W_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE)
    op(_JEQ, PACKET_OUTGOING, "drop", 0)
    op(_LD_W_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL)
    op(_JEQ, 0x0800, "v4", 0)
    op(_JEQ, 0x86DD, "v6", "drop")
    label("v4")
    op(_LD_B_ABS, 9)
    op(_JEQ, 1, "accept", 0)
    op(_JEQ, 6, "l4v4", 0)
    op(_JEQ, 17, "l4v4", "drop")
    label("l4v4")
    op(_LD_H_ABS, 6)
    op(_JSET, 0x1FFF, "drop", 0)
    op(_LDX_B_MSH, 0)
    op(_LD_H_IND, 2)
    op(_JGE, port_lo, 0, "drop")
    op(_JGE, port_hi, "drop", "accept")
    label("v6")
    op(_LD_B_ABS, 6)
    op(_JEQ, 58, "accept", 0)
    op(_JEQ, 6, "l4v6", 0)
    op(_JEQ, 17, "l4v6", "drop")
    label("l4v6")
    op(_LD_H_ABS, 42)
    op(_JGE, port_lo, 0, "drop")
    op(_JGE, port_hi, "drop", "accept")
    label("accept")
    op(_RET_K, 0x40000)
    label("drop")
    op(_RET_K, 0)

    out: list[Insn] = []
    for i, (code, k, jt, jf) in enumerate(prog):
        def rel(t: str | int, i: int = i) -> int:
            return labels[t] - i - 1 if isinstance(t, str) else t

        out.append((code, rel(jt), rel(jf), k))
    return out


def attach_filter(sock: socket.socket, prog: list[Insn]) -> None:
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    arr = (SockFilter * len(prog))(*[SockFilter(c, jt, jf, k) for c, jt, jf, k in prog])
    fprog = struct.pack("HL", len(prog), ctypes.addressof(arr))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def raw_available() -> str | None:
    """None if this process may open raw sockets, else why not."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.close()
        # protocol 0: no packet is queued to it; closed by a helper thread (see
        # close_packet_socket: the release of a packet socket waits ~10 ms)
        close_packet_socket(socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0))
    except PermissionError:
        return "no permission to open raw sockets (needs root or CAP_NET_RAW)"
    except OSError as exc:
        return f"raw sockets unavailable: {exc.strerror or exc}"
    return None


def _set_buf(sock: socket.socket, force: int, normal: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, normal, size)
        except OSError:
            pass


class RawIO:
    """The sockets of one raw engine. ``send(packet, dst)`` returns an errno (0 = sent);
    ``recv_into(buf)`` returns a length or 0 when nothing is waiting."""

    SPAN = 8  # source ports: base .. base+7 (the try number is the offset)

    def __init__(self, *, rcvbuf: int = 32 << 20, port_base: int | None = None) -> None:
        try:
            self.send4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.send6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.recv = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                                      socket.htons(ETH_P_ALL))
        except PermissionError:
            raise PermissionProblem(CAPABILITY_HELP) from None
        for s in (self.send4, self.send6):
            s.setblocking(False)
            _set_buf(s, SO_SNDBUFFORCE, socket.SO_SNDBUF, 8 << 20)
        self._reserved: list[socket.socket] = []
        self.port_base = self._reserve(port_base)
        self.recv.setblocking(False)
        _set_buf(self.recv, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
        attach_filter(self.recv, reply_filter(self.port_base, self.port_base + self.SPAN))
        self._drain()
        self._route4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._route6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self._src_cache: dict[str, str] = {}

    def _reserve(self, base: int | None) -> int:
        rng = random.Random(os.urandom(8))
        for _ in range(64):
            b = base if base is not None else rng.randrange(40000, 60000 - self.SPAN, self.SPAN)
            socks: list[socket.socket] = []
            try:
                for port in range(b, b + self.SPAN):
                    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                        s = socket.socket(socket.AF_INET6, kind)
                        socks.append(s)
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                        if kind == socket.SOCK_DGRAM:
                            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                        s.bind(("::", port))
            except OSError as exc:
                for s in socks:
                    s.close()
                if exc.errno != errno.EADDRINUSE or base is not None:
                    raise
                continue
            self._reserved = socks
            return b
        raise PermissionProblem("cannot reserve source ports for the raw engine")

    def _drain(self) -> None:
        """Drop what arrived before the filter was attached."""
        buf = bytearray(2048)
        for _ in range(100000):
            try:
                self.recv.recv_into(buf)
            except BlockingIOError:
                return

    def source_for(self, dst: str) -> str | None:
        """The local address the kernel would use towards *dst* (None: no route)."""
        src = self._src_cache.get(dst)
        if src is not None:
            return src
        s = self._route6 if ":" in dst else self._route4
        try:
            s.connect((dst, 9))
            src = str(s.getsockname()[0]).split("%", 1)[0]
        except OSError:
            return None
        if len(self._src_cache) > 4096:
            self._src_cache.clear()
        self._src_cache[dst] = src
        return src

    def send(self, packet: bytes, dst: str) -> int:
        s = self.send6 if ":" in dst else self.send4
        try:
            s.sendto(packet, (dst, 0))
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def recv_into(self, buf: bytearray) -> int:
        try:
            return self.recv.recv_into(buf)
        except BlockingIOError:
            return 0
        except OSError:
            return 0

    def drops(self) -> int:
        """Packets the kernel dropped on our receive socket since the last call."""
        try:
            data = self.recv.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return 0
        _packets, drops = struct.unpack("II", data)
        return int(drops)

    def fileno(self) -> int:
        return self.recv.fileno()

    def close(self) -> None:
        for s in (self.send4, self.send6, self._route4, self._route6, *self._reserved):
            s.close()
        self._reserved = []
        close_packet_socket(self.recv)


def close_packet_socket(sock: socket.socket) -> None:
    """Close an AF_PACKET socket without waiting for it: the kernel's release of a packet
    socket waits for an RCU grace period (synchronize_net, 8-16 ms), which a helper
    thread can wait out while the scan goes on. The socket must not be used again."""
    if sock.fileno() < 0:
        return
    threading.Thread(target=sock.close, name="close-packet-socket", daemon=True).start()


class BatchReceiver:
    """``recvmmsg(2)`` through ctypes: up to :attr:`SLOTS` packets per system call into
    fixed slots of one buffer (Python's socket module has no recvmmsg). Packet *i* is at
    ``buffer[i * SLOT:]``, its length ``lengths[i * 16 + 14]`` (``struct mmsghdr`` is 64
    bytes, ``msg_len`` at byte 56)."""

    SLOTS = 64
    SLOT = 2048

    def __init__(self, fd: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.recvmmsg
        fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                       ctypes.c_void_p)
        fn.restype = ctypes.c_int
        if ctypes.sizeof(ctypes.c_void_p) != 8:
            raise OSError("recvmmsg slots are laid out for 64-bit platforms")
        self._fn = fn
        self._fd = fd
        self.buffer = bytearray(self.SLOTS * self.SLOT)
        data = (ctypes.c_char * len(self.buffer)).from_buffer(self.buffer)
        base = ctypes.addressof(data)
        self._data = data
        iov = (ctypes.c_uint64 * (2 * self.SLOTS))()
        hdrs = bytearray(64 * self.SLOTS)
        hbuf = (ctypes.c_char * len(hdrs)).from_buffer(hdrs)
        for i in range(self.SLOTS):
            iov[2 * i] = base + i * self.SLOT
            iov[2 * i + 1] = self.SLOT
            # msghdr: name, namelen, iov, iovlen, control, controllen, flags; then msg_len
            struct.pack_into("QI4xQQQQi4xI4x", hdrs, 64 * i, 0, 0,
                             ctypes.addressof(iov) + 16 * i, 1, 0, 0, 0, 0)
        self._iov, self._hdrs, self._hbuf = iov, hdrs, hbuf
        self._hdr_addr = ctypes.addressof(hbuf)
        self.lengths = memoryview(hdrs).cast("I")

    def receive(self) -> int:
        """Packets now in the slots (0: nothing waiting)."""
        n = self._fn(self._fd, self._hdr_addr, self.SLOTS, 0x40, None)  # MSG_DONTWAIT
        return n if n > 0 else 0
