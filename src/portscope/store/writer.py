"""Streaming a scan into the store as results arrive.

The scan thread only turns each result into a tuple and appends it to a queue, or, for
a closed/filtered result without a service (the bulk of a scan), appends its port number
to a list per (address, protocol, state, reason, TTL) (no database work on the hot
path). Every ``interval`` seconds (0.2 s) a sender thread hands what has accumulated
to a writer *process* (:mod:`portscope.store.writer_proc`), which commits it in
transactions of at most ``CHUNK`` entries. The database work thus runs on another core
and never competes with the scan for the GIL.

Durability: SQLite runs in WAL mode with ``synchronous=NORMAL``, so a commit survives
the death of the process (not a power cut). If the scanning process is killed
(``kill -9``), the writer process still commits every batch already sent, so what is
lost is at most the results of the last interval (0.2 s). The run stays ``running`` with
the dead process's pid and is shown as ``incomplete``, resumable with ``portscope scan
--resume RUN``. When the writer process cannot be started (or dies), the sender thread
writes through this process's own connection instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO, cast

from portscope.errors import PortscopeError
from portscope.model import PortResult, PortState, ScanRun
from portscope.store.api import Store, StoreWriteError, port_tuple
from portscope.store.fastpath import GroupKey, Row, results_in
from portscope.store.writer_proc import write_frame

DEFAULT_INTERVAL = 0.2
"""Seconds between hand-overs to the writer: the most a killed scan can lose."""
HEARTBEAT_EVERY = 5.0
CHUNK = 2000
"""Rows per transaction at most (a commit of 2,000 rows takes ~40 ms on SQLite)."""
SYNC_TIMEOUT = 600.0

Key = tuple[str, str, int]
_now = time.time
_OPEN = PortState.OPEN


class RunWriter:
    """Writes one run into *store* while it is being scanned."""

    def __init__(self, store: Store, *, source: str = "scan",
                 options: Mapping[str, Any] | None = None, watch: str | None = None,
                 interval: float = DEFAULT_INTERVAL, process: bool = True) -> None:
        self.store = store
        self.source = source
        self.options = options
        self.watch = watch
        self.interval = interval
        self.use_process = process
        self.run_id: str | None = None
        # deque: append (scan thread) and popleft (sender thread) are thread-safe
        self._buffer: deque[Row] = deque()
        # closed/filtered results without a service, as port lists per (address,
        # protocol, state, reason, TTL): sent as one SetTuple each (see fastpath)
        self._sets: dict[GroupKey, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streamed: dict[Key, PortResult] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._syncs = 0
        self._last_beat = 0.0
        self.error: str | None = None
        self.batches = 0
        self.rows = 0

    # -- the scan's events ---------------------------------------------------------------

    def prime(self, results: Iterable[tuple[str, PortResult]]) -> None:
        """Results already in the store (a resumed run): not written again at the end."""
        for address, p in results:
            self._streamed[(address, p.protocol.value, p.port)] = p

    def start(self, header: ScanRun) -> None:
        self.run_id = header.id
        self.store.begin_run(header, source=self.source, options=self.options,
                             watch=self.watch)
        if self.use_process and not self.store.in_memory:
            self._spawn()
        self._thread = threading.Thread(target=self._loop, name="portscope-store",
                                        daemon=True)
        self._thread.start()

    def port(self, address: str, result: PortResult) -> None:
        # hot path (once per port of a scan): one tuple, one append, no database work;
        # _value_ is what .value returns, without the enum descriptor (5x faster)
        proto = result.protocol._value_
        if result.service is None and result.state is not _OPEN:
            key = (address, proto, result.state._value_, result.reason, result.ttl)
            with self._lock:
                members = self._sets.get(key)
                if members is None:
                    self._sets[key] = [result.port]
                else:
                    members.append(result.port)
        else:
            self._buffer.append(port_tuple(address, result, _now()))
        self._streamed[(address, proto, result.port)] = result

    def finish(self, run: ScanRun) -> None:
        """Commit the rest and the final run (hosts, findings, status, stats)."""
        self._drain()
        streamed = self._streamed
        changed = []
        for h in run.hosts:
            address = h.address
            for p in h.ports:
                q = streamed.get((address, p.protocol._value_, p.port))
                if q is not p and q != p:  # enriched after it was streamed (or new)
                    changed.append((address, p))
        self.store.finish_run(run, changed_ports=changed)

    def close(self) -> None:
        """Commit what is buffered and stop (also after an error)."""
        with contextlib.suppress(PortscopeError):
            self._drain()

    # -- the writer process ---------------------------------------------------------------

    def _spawn(self) -> None:
        env = dict(os.environ)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "portscope.store.writer_proc"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=None if os.environ.get("PORTSCOPE_DEBUG")
                else subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError, AttributeError):  # Linux: a 1 MiB pipe, so a
                import fcntl  # lagging writer process does not hold the sender up

                fcntl.fcntl(self._proc.stdin.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031),
                            1 << 20)
            write_frame(self._proc.stdin, ("open", self.store.url, self.run_id))
        except OSError:
            self._proc = None  # write in this process instead

    def _send(self, rows: list[Row]) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            try:
                write_frame(cast(BinaryIO, proc.stdin), ("rows", rows))
                self.batches += 1
                self.rows += results_in(rows)
                return
            except (OSError, ValueError):
                self._proc = None  # the writer process died: carry on here
                with contextlib.suppress(OSError):
                    proc.kill()
        self._write_here(rows)

    def _write_here(self, rows: list[Row]) -> None:
        assert self.run_id is not None
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i:i + CHUNK]
            try:
                with self.store.errors(), self.store.engine.begin() as conn:
                    self.store.add_port_tuples(conn, self.run_id, chunk)
                    self.store.heartbeat(self.run_id, conn=conn)
            except BaseException:
                self._buffer.extendleft(reversed(rows[i:]))  # kept for the next try
                raise
        self.batches += 1
        self.rows += results_in(rows)

    def _take(self) -> list[Row]:
        buf = self._buffer
        rows: list[Row] = [buf.popleft() for _ in range(len(buf))]
        if self._sets:
            with self._lock:
                sets, self._sets = self._sets, {}
            now = _now()
            rows.extend((*key, members, now) for key, members in sets.items())
        return rows

    def _drain(self) -> None:
        """Stop the sender thread, hand over the rest and wait until it is committed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.run_id is None:
            return
        rows = self._take()
        if rows:
            self._send(rows)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        ok = False
        try:
            assert proc.stdin is not None and proc.stdout is not None
            self._syncs += 1
            write_frame(cast(BinaryIO, proc.stdin), ("sync", self._syncs))
            ok = _wait_ok(cast(BinaryIO, proc.stdout), self._syncs)
            proc.stdin.close()
            proc.wait(SYNC_TIMEOUT)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            ok = False
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if not ok:
            raise StoreWriteError(f"the store's writer process failed: results of run "
                                  f"{self.run_id} may be missing from {self.store.label}")

    def _loop(self) -> None:
        assert self.run_id is not None
        while not self._stop.wait(self.interval):
            try:
                if self._buffer or self._sets:
                    self._send(self._take())
                    self._last_beat = time.monotonic()
                elif time.monotonic() - self._last_beat > HEARTBEAT_EVERY:
                    self.store.heartbeat(self.run_id)
                    self._last_beat = time.monotonic()
            except PortscopeError as exc:  # database busy or gone: retry next interval
                self.error = exc.message


def _wait_ok(stream: BinaryIO, n: int) -> bool:
    while True:
        line = stream.readline()
        if not line:
            return False
        text = line.decode(errors="replace").strip()
        if text == f"ok {n}":
            return True
        if text == f"error {n}":
            return False
