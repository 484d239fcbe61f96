"""A helper process that does the raw sends, so the kernel's per-packet work (routing,
the veth/NIC path, netfilter) runs on another core while the engine's Python loop builds
probes and reads replies. Python has no sendmmsg and one GIL: this doubles the rate on a
two-core machine.

The engine writes frames ``[u16 length][packet]`` to the helper's stdin (a pipe; the
destination is the packet's own); the helper inherits the two raw sockets (it opens nothing, so it
needs no privileges of its own) and exits at EOF, printing how many sends failed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import subprocess
import sys

_CHILD = r"""
import os, socket, sys, time
s4 = socket.socket(fileno=int(sys.argv[1]))
s6 = socket.socket(fileno=int(sys.argv[2]))
ntop, A4, A6 = socket.inet_ntop, socket.AF_INET, socket.AF_INET6
fails = 0
buf = b""
last = b""
dst = ("", 0)
while True:
    chunk = os.read(0, 1 << 20)
    if not chunk:
        break
    buf = buf + chunk if buf else chunk
    mv = memoryview(buf)
    i, end = 0, len(buf)
    while i + 2 <= end:
        n = (buf[i] << 8) | buf[i + 1]
        j = i + 2
        if j + n > end:
            break
        # the destination is the packet's own (IPv4: bytes 16-19, IPv6: 24-39)
        if buf[j] >> 4 == 4:
            a, s = buf[j + 16:j + 20], s4
            if a != last:
                last, dst = a, (ntop(A4, a), 0)
        else:
            a, s = buf[j + 24:j + 40], s6
            if a != last:
                last, dst = a, (ntop(A6, a), 0)
        pkt = mv[j:j + n]
        for _ in range(5000):  # a full queue is waited out (up to ~1 s), not dropped
            try:
                s.sendto(pkt, dst)
                break
            except (BlockingIOError, InterruptedError):
                time.sleep(0.0002)
            except OSError as exc:
                if exc.errno == 105:  # ENOBUFS: the device queue is full, wait a little
                    time.sleep(0.0002)
                    continue
                fails += 1
                break
        else:
            fails += 1
        i = j + n
    mv.release()
    buf = buf[i:]
sys.stdout.write(f"{fails}\n")
"""

F_SETPIPE_SZ = 1031


class ProcessSender:
    """Queue packets for the helper process; ``flush()`` writes without blocking."""

    MAX_PENDING = 4 << 20

    def __init__(self, fd4: int, fd6: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, str(fd4), str(fd6)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(fd4, fd6),
            close_fds=True)
        assert self.proc.stdin is not None
        self._fd = self.proc.stdin.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, 1 << 20)
        os.set_blocking(self._fd, False)
        self._buf = bytearray()
        self.failed = 0

    def send(self, packet: bytes, dst: str) -> int:
        """Queue one packet; returns EAGAIN when too much is queued already."""
        if len(self._buf) > self.MAX_PENDING:
            self.flush()
            if len(self._buf) > self.MAX_PENDING:
                return errno.EAGAIN
        n = len(packet)
        self._buf += bytes((n >> 8, n & 0xFF))
        self._buf += packet
        if len(self._buf) >= 16384:
            self.flush()
        return 0

    def flush(self) -> bool:
        """Write what the pipe takes; True when nothing is left queued."""
        while self._buf:
            try:
                n = os.write(self._fd, self._buf)
            except BlockingIOError:
                return False
            except OSError:
                self._buf.clear()
                return True
            del self._buf[:n]
        return True

    @property
    def buffer(self) -> bytearray:
        """The queue itself: the engine appends ready frames to it (``flush`` sends)."""
        return self._buf

    @property
    def pending(self) -> int:
        return len(self._buf)

    def close(self) -> None:
        os.set_blocking(self._fd, True)
        with contextlib.suppress(OSError):
            self.flush()
        out, _ = self.proc.communicate(timeout=30)
        with contextlib.suppress(ValueError):
            self.failed = int(out.decode().strip() or 0)
