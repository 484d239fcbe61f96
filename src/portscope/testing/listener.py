"""A many-port TCP/UDP server for test hosts: ``python -m portscope.testing.listener``.

One process binds every requested port (selectors, no threads) and prints one line,
``READY tcp=<n> udp=<m>``, on stdout only once *every* socket is bound, so a test that waits
for that line never races the server. On any bind error it prints ``ERROR <reason>`` and exits 1.

TCP: accept; send ``--banner`` if given; then either close at once (default) or, with
``--echo``, echo what the peer sends until it closes.
UDP: answer each datagram with ``--reply`` (or echo it with ``--udp-echo``), from the very
address the datagram was sent to (IP_PKTINFO), so replies are right also for addresses that
exist only through a ``local`` route.

Without ``--addr`` both families are bound (0.0.0.0 and ::, v6only). The server exits when
its parent process goes away (checked every second), so it cannot outlive a killed test.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import resource
import selectors
import signal
import socket
import struct
import sys
from collections.abc import Iterable, Sequence

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # not exported by every Python build
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND = getattr(socket, "IPV6_FREEBIND", 78)
_CMSG_SPACE = 256


def parse_ports(spec: str) -> list[int]:
    """``"22,80,1000-1002"`` -> ``[22, 80, 1000, 1001, 1002]`` (sorted, unique)."""
    ports: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo_text, sep, hi_text = part.partition("-")
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
        if not (0 < lo <= hi <= 65535):
            raise ValueError(f"bad port range {part!r}")
        ports.update(range(lo, hi + 1))
    return sorted(ports)


def format_ports(ports: Iterable[int]) -> str:
    """The inverse of :func:`parse_ports`: ``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    out: list[str] = []
    for lo, hi in port_ranges(ports):
        out.append(str(lo) if lo == hi else f"{lo}-{hi}")
    return ",".join(out)


def port_ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges of *ports*."""
    ranges: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if not 0 < port <= 65535:
            raise ValueError(f"bad port {port}")
        if ranges and ranges[-1][1] == port - 1:
            ranges[-1] = (ranges[-1][0], port)
        else:
            ranges.append((port, port))
    return ranges


def _raise_nofile(need: int) -> None:
    """Allow *need* sockets (root may raise the hard limit too, up to fs.nr_open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 64
    if soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Server:
    def __init__(
        self,
        *,
        addrs: Sequence[str],
        tcp: Sequence[int],
        udp: Sequence[int],
        banner: bytes,
        echo: bool,
        reply: bytes,
        udp_echo: bool,
    ) -> None:
        self.sel = selectors.DefaultSelector()
        self.banner = banner
        self.echo = echo
        self.reply = reply
        self.udp_echo = udp_echo
        self.tcp_count = 0
        self.udp_count = 0
        _raise_nofile(len(addrs) * (len(tcp) + len(udp)))
        for addr in addrs:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            for port in tcp:
                self._bind_tcp(family, addr, port)
            for port in udp:
                self._bind_udp(family, addr, port)

    def _socket(self, family: int, kind: int) -> socket.socket:
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        return sock

    def _bind_tcp(self, family: int, addr: str, port: int) -> None:
        sock = self._socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((addr, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"tcp {addr} port {port}: {exc.strerror}") from None
        self.sel.register(sock, selectors.EVENT_READ, ("accept", None))
        self.tcp_count += 1

    def _bind_udp(self, family: int, addr: str, port: int) -> None:
        sock = self._socket(family, socket.SOCK_DGRAM)
        # PKTINFO: learn each datagram's destination and answer from it. FREEBIND: the
        # kernel refuses an IPv6 source (from PKTINFO) that only a `local` route makes ours.
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        try:
            sock.bind((addr, port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"udp {addr} port {port}: {exc.strerror}") from None
        self.sel.register(sock, selectors.EVENT_READ, ("udp", family))
        self.udp_count += 1

    def serve(self, parent: int) -> None:
        while True:
            for key, _mask in self.sel.select(timeout=1.0):
                what, extra = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if what == "accept":
                    self._accept(sock)
                elif what == "conn":
                    self._echo(sock)
                else:
                    self._udp(sock, extra)
            if parent and os.getppid() != parent:
                return

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, _peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNABORTED, EMFILE ...: keep serving
                return
            if self.banner:
                with contextlib.suppress(OSError):
                    conn.setblocking(True)
                    conn.settimeout(2.0)
                    conn.sendall(self.banner)
            if self.echo:
                conn.setblocking(False)
                self.sel.register(conn, selectors.EVENT_READ, ("conn", None))
            else:
                conn.close()

    def _echo(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.settimeout(2.0)
                conn.sendall(data)
                conn.setblocking(False)
                return
        self.sel.unregister(conn)
        conn.close()

    def _udp(self, sock: socket.socket, family: int) -> None:
        for _ in range(64):
            try:
                data, ancdata, _flags, peer = sock.recvmsg(65535, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors reported on the socket, etc.
                return
            payload = data if self.udp_echo else self.reply
            cmsgs = []
            for level, kind, value in ancdata:
                if family == socket.AF_INET and level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    # struct in_pktinfo {int ifindex; in_addr spec_dst; in_addr addr;}
                    _ifindex, _spec, dst = struct.unpack("=i4s4s", value[:12])
                    cmsgs.append(
                        (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, dst, dst))
                    )
                elif (
                    family == socket.AF_INET6
                    and level == socket.IPPROTO_IPV6
                    and kind == socket.IPV6_PKTINFO
                ):
                    # struct in6_pktinfo {in6_addr addr; unsigned ifindex;}
                    dst6 = value[:16]
                    cmsgs.append(
                        (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", dst6, 0))
                    )
            with contextlib.suppress(OSError):
                sock.sendmsg([payload], cmsgs, 0, peer)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portscope.testing.listener")
    parser.add_argument("--addr", action="append", default=[], help="bind address (repeatable)")
    parser.add_argument("--tcp", default="", help="TCP ports, e.g. 22,80,1000-1100")
    parser.add_argument("--udp", default="", help="UDP ports")
    parser.add_argument("--banner-hex", default="", help="bytes sent on every TCP accept")
    parser.add_argument("--echo", action="store_true", help="echo TCP data instead of closing")
    parser.add_argument("--reply-hex", default="", help="UDP answer (default: echo)")
    parser.add_argument("--udp-echo", action="store_true", help="echo UDP datagrams")
    parser.add_argument("--parent", type=int, default=0, help="exit when this pid is gone")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        tcp = parse_ports(args.tcp)
        udp = parse_ports(args.udp)
        reply = bytes.fromhex(args.reply_hex)
        server = Server(
            addrs=args.addr or ["0.0.0.0", "::"],
            tcp=tcp,
            udp=udp,
            banner=bytes.fromhex(args.banner_hex),
            echo=args.echo,
            reply=reply,
            udp_echo=args.udp_echo or not reply,
        )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, OSError) and exc.errno:
            reason = f"{reason} ({errno.errorcode.get(exc.errno, exc.errno)})"
        print(f"ERROR {reason}", flush=True)
        return 1
    if args.parent and os.getppid() != args.parent:
        return 0
    print(f"READY tcp={server.tcp_count} udp={server.udp_count}", flush=True)
    try:
        server.serve(args.parent)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
