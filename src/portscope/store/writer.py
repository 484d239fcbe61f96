"""Streaming a scan into the store as results arrive.

The scan thread only appends to a list (no database work on the hot path); a writer
thread commits what has accumulated every ``interval`` seconds (0.2 s by default) in one
transaction of batched inserts. So a killed process (``kill -9``, OOM, power loss aside)
loses at most the results of the last interval plus the one commit in progress, and the
run stays marked ``running`` with a stale heartbeat, which the store shows as
``incomplete`` (resumable with ``portscope scan --resume RUN``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from portscope.errors import PortscopeError
from portscope.model import PortResult, ScanRun, utcnow
from portscope.store.api import Store

DEFAULT_INTERVAL = 0.2
"""Seconds between commits: the most a killed scan can lose (plus one commit)."""
HEARTBEAT_EVERY = 5.0

Key = tuple[str, str, int]


class RunWriter:
    """Writes one run into *store* while it is being scanned."""

    def __init__(self, store: Store, *, source: str = "scan",
                 options: Mapping[str, Any] | None = None, watch: str | None = None,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.source = source
        self.options = options
        self.watch = watch
        self.interval = interval
        self.run_id: str | None = None
        # deque: append (scan thread) and popleft (writer thread) are thread-safe
        self._buffer: deque[tuple[str, PortResult, datetime]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streamed: dict[Key, PortResult] = {}
        self._error: BaseException | None = None
        self._last_beat = 0.0
        self.commits = 0
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
        self._thread = threading.Thread(target=self._loop, name="portscope-store",
                                        daemon=True)
        self._thread.start()

    def port(self, address: str, result: PortResult) -> None:
        # hot path: one tuple, one append; no database work here
        self._buffer.append((address, result, utcnow()))
        self._streamed[(address, result.protocol.value, result.port)] = result

    def finish(self, run: ScanRun) -> None:
        """Commit the rest and the final run (hosts, findings, status, stats)."""
        self._stop_thread()
        self._flush()
        changed = [(h.address, p) for h in run.hosts for p in h.ports
                   if self._streamed.get((h.address, p.protocol.value, p.port)) != p]
        self.store.finish_run(run, changed_ports=changed)

    def close(self) -> None:
        """Stop the writer thread and commit what is buffered (also after an error)."""
        self._stop_thread()
        try:
            self._flush()
        except PortscopeError:
            pass

    # -- the writer thread --------------------------------------------------------------

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _take(self) -> list[tuple[str, PortResult, datetime]]:
        buf = self._buffer
        return [buf.popleft() for _ in range(len(buf))]

    def _flush(self) -> None:
        if self.run_id is None:
            return
        batch = self._take()
        if not batch:
            return
        try:
            with self.store.errors(), self.store.engine.begin() as conn:
                self.store.add_ports(self.run_id, batch, conn=conn)
                self.store.heartbeat(self.run_id, conn=conn)
        except BaseException:
            self._buffer.extendleft(reversed(batch))  # kept for the next try
            raise
        self.commits += 1
        self.rows += len(batch)

    def _loop(self) -> None:
        import time

        assert self.run_id is not None
        while not self._stop.wait(self.interval):
            try:
                if self._buffer:
                    self._flush()
                    self._last_beat = time.monotonic()
                elif time.monotonic() - self._last_beat > HEARTBEAT_EVERY:
                    self.store.heartbeat(self.run_id)
                    self._last_beat = time.monotonic()
            except PortscopeError as exc:  # database busy or gone: retry next interval
                self._error = exc
