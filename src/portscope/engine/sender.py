"""A helper process that does the raw sends, so the kernel's per-packet work (routing,
the veth/NIC path, netfilter) runs on another core while the engine's Python loop builds
probes and reads replies. Python has no sendmmsg and one GIL: this doubles the rate on a
two-core machine.

The engine writes frames ``[u16 length][packet]`` to the helper's stdin (a pipe; the
destination is the packet's own); the helper inherits the two raw sockets (it opens nothing, so it
needs no privileges of its own) and exits at EOF, printing how many sends failed. It sends
with ``sendmmsg(2)`` through ctypes (up to 1,024 packets per call), or one ``sendto`` per
packet where that is not available (or ``PORTSCOPE_NO_MMSG`` is set: the tests' way to run
the fallback).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import subprocess
import sys
import termios

_CHILD = r"""
import ctypes, os, socket, struct, sys, time
s4 = socket.socket(fileno=int(sys.argv[1]))
s6 = socket.socket(fileno=int(sys.argv[2]))
fails = 0

def simple():
    # one sendto per packet (where sendmmsg cannot be reached through ctypes)
    global fails
    ntop, A4, A6 = socket.inet_ntop, socket.AF_INET, socket.AF_INET6
    buf, last, dst = b"", b"", ("", 0)
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return
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

def batched():
    # sendmmsg(2): up to N packets per system call, straight from the read buffer (the
    # frames stay where they were read; iovecs and message headers point into it)
    global fails
    if os.environ.get("PORTSCOPE_NO_MMSG"):
        raise OSError("sendmmsg disabled")
    libc = ctypes.CDLL(None, use_errno=True)
    sendmmsg = libc.sendmmsg
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        raise OSError("64-bit layout only")
    N, SIZE = 1024, 1 << 20
    buf = bytearray(SIZE + 65536)
    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    base = ctypes.addressof(cbuf)
    hdrs = bytearray(64 * N)
    chdr = (ctypes.c_char * len(hdrs)).from_buffer(hdrs)
    haddr = ctypes.addressof(chdr)
    iovs = bytearray(16 * N)
    ciov = (ctypes.c_char * len(iovs)).from_buffer(iovs)
    iaddr = ctypes.addressof(ciov)
    pack_hdr = struct.Struct("QI4xQQQQi4xI4x").pack_into
    pack_iov = struct.Struct("QQ").pack_into
    names = {}  # destination bytes -> (ctypes sockaddr kept alive, address, length)

    def name_of(a):
        got = names.get(a)
        if got is None:
            if len(a) == 4:
                raw = struct.pack("=H", socket.AF_INET) + bytes(2) + a + bytes(8)
            else:
                raw = struct.pack("=H", socket.AF_INET6) + bytes(6) + a + bytes(4)
            cb = ctypes.create_string_buffer(raw, len(raw))
            if len(names) > 65536:
                names.clear()
            got = names[a] = (cb, ctypes.addressof(cb), len(raw))
        return got

    def flush(fd, k):
        global fails
        done, waited = 0, 0
        while done < k:
            m = sendmmsg(fd, haddr + 64 * done, k - done, 0)
            if m > 0:
                done += m
                continue
            err = ctypes.get_errno()
            if err in (11, 105, 4) and waited < 5000:  # EAGAIN, ENOBUFS, EINTR: wait
                waited += 1
                time.sleep(0.0002)
                continue
            fails += 1  # this message cannot be sent (EPERM, unreachable ...): skip it
            done += 1

    fill = 0
    stdin = open(0, "rb", buffering=0)
    mv = memoryview(buf)
    while True:
        n = stdin.readinto(mv[fill:SIZE])
        if not n:
            return
        end = fill + n
        i, k, fd = 0, 0, -1
        while i + 2 <= end:
            ln = (buf[i] << 8) | buf[i + 1]
            j = i + 2
            if j + ln > end:
                break
            if buf[j] >> 4 == 4:
                a, sfd = bytes(buf[j + 16:j + 20]), s4.fileno()
            else:
                a, sfd = bytes(buf[j + 24:j + 40]), s6.fileno()
            if sfd != fd or k == N:
                if k:
                    flush(fd, k)
                k, fd = 0, sfd
            _cb, naddr, nlen = name_of(a)
            pack_iov(iovs, 16 * k, base + j, ln)
            pack_hdr(hdrs, 64 * k, naddr, nlen, iaddr + 16 * k, 1, 0, 0, 0, 0)
            k += 1
            i = j + ln
        if k:
            flush(fd, k)
        rest = end - i
        if rest:
            buf[:rest] = buf[i:end]
        fill = rest

try:
    batched()
except (OSError, AttributeError, ValueError):
    simple()
sys.stdout.write(f"{fails}\n")
"""

F_SETPIPE_SZ = 1031


def _current_cpu() -> int:
    """sched_getcpu(3), or -1."""
    try:
        import ctypes

        return int(ctypes.CDLL(None).sched_getcpu())
    except (OSError, AttributeError):
        return -1


class ProcessSender:
    """Queue packets for the helper process; ``flush()`` writes without blocking."""

    # Queued frames wait here and in the pipe: both are kept short (~8k SYN probes in
    # all), so that a probe is sent soon after it is stamped as sent (a deep queue turns
    # into false timeouts and needless retransmissions), and a full queue holds the
    # engine back instead
    MAX_PENDING = 128 << 10
    PIPE_SIZE = 256 << 10

    def __init__(self, fd4: int, fd6: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, str(fd4), str(fd6)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(fd4, fd6),
            close_fds=True)
        assert self.proc.stdin is not None
        self._fd = self.proc.stdin.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, self.PIPE_SIZE)
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

    def unsent(self) -> int:
        """Bytes queued here or still in the pipe (not yet taken by the helper)."""
        try:
            in_pipe = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD,
                                                     b"\0\0\0\0"))[0]
        except OSError:
            in_pipe = 0
        return len(self._buf) + int(in_pipe)

    def pin(self) -> set[int] | None:
        """Keep this process and the helper on different CPUs (when at least two are
        allowed): the kernel's per-packet work (the helper's sends, and the replies they
        trigger, handled in the same softirq) stays off the engine's CPU. Left to the
        scheduler, the two sometimes share a core for a while: the same -p- scan then
        took 1.4 instead of 1.15 s. The engine stays on the CPU it runs on, the helper
        gets the others; ``PORTSCOPE_NO_PIN`` turns this off. Returns the affinity to
        restore (``unpin``)."""
        try:
            allowed = os.sched_getaffinity(0)
            if len(allowed) < 2 or os.environ.get("PORTSCOPE_NO_PIN"):
                return None
            # the CPU the scheduler has put us on (several scans at once stay spread)
            mine = _current_cpu()
            if mine not in allowed:
                mine = min(allowed)
            os.sched_setaffinity(self.proc.pid, allowed - {mine})
            os.sched_setaffinity(0, {mine})
        except (OSError, AttributeError):
            return None
        return allowed

    @staticmethod
    def unpin(allowed: set[int] | None) -> None:
        if allowed:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, allowed)

    def close(self) -> None:
        os.set_blocking(self._fd, True)
        with contextlib.suppress(OSError):
            self.flush()
        out, _ = self.proc.communicate(timeout=30)
        with contextlib.suppress(ValueError):
            self.failed = int(out.decode().strip() or 0)
