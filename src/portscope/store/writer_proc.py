"""The writer process of a streaming scan (``python -m portscope.store.writer_proc``).

The scanning process sends it batches of port rows over a pipe (length-prefixed pickle
frames; both ends are portscope, started together) and it commits them, so the database
work runs on another core than the scan and never holds the scan's GIL. It runs in its
own session (Ctrl-C in the terminal does not reach it) and ends when its input ends: if
the scanning process is killed, what was sent is still committed.

Frames: ``("open", url, run_id)`` first, then ``("rows", [PortTuple, ...])`` and
``("sync", n)`` (answered with ``ok n`` on standard output once everything before it
is committed).
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import sys
from collections.abc import Callable
from typing import IO, Any

HEADER = struct.Struct(">I")
CHUNK = 2000


def write_frame(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None  # the sender died in the middle of a frame
    return pickle.loads(data)


def main() -> int:
    import os

    # the scan has priority; this process catches up (what it was sent is safe: it
    # drains its input even after the scanning process died)
    with contextlib.suppress(OSError):
        os.nice(10)
    inp = sys.stdin.buffer
    out = sys.stdout
    first = read_frame(inp)
    if not first or first[0] != "open":
        return 2
    _, url, run_id = first
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and "?" not in url:
        return _sqlite_main(url.split(":///", 1)[1], run_id, inp, out)
    return _store_main(url, run_id, inp, out)


def _sqlite_main(path: str, run_id: str, inp: IO[bytes], out: IO[str]) -> int:
    """A SQLite store through the driver alone (the statements of
    :mod:`portscope.store.fastpath`, as the store itself runs them)."""
    import sqlite3
    import time

    from portscope.store import fastpath

    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                   "busy_timeout=30000"):  # as api._sqlite_pragmas
        conn.execute(f"PRAGMA {pragma}")
    ports_sql, sets_sql = fastpath.ports_sql(False), fastpath.sets_sql(False)
    beat_sql = fastpath.heartbeat_sql(False)

    def write(rows: list[Any]) -> None:
        port_rows, set_rows = fastpath.split_batch(run_id, rows, sqlite=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if port_rows:
                conn.executemany(ports_sql, port_rows)
            if set_rows:
                conn.executemany(sets_sql, set_rows)
            conn.execute(beat_sql, (fastpath.db_time(time.time(), True), run_id))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    try:
        return _loop(inp, out, write, sqlite3.Error)
    finally:
        conn.close()


def _store_main(url: str, run_id: str, inp: IO[bytes], out: IO[str]) -> int:
    from portscope.errors import PortscopeError
    from portscope.store.api import open_store

    store = open_store(url, upgrade=False)

    def write(rows: list[Any]) -> None:
        with store.errors(), store.engine.begin() as conn:
            store.add_port_tuples(conn, run_id, rows)
            store.heartbeat(run_id, conn=conn)

    try:
        return _loop(inp, out, write, PortscopeError)
    finally:
        store.close()


def _loop(inp: IO[bytes], out: IO[str], write: Callable[[list[Any]], None],
          errors: type[Exception] | tuple[type[Exception], ...]) -> int:
    failed: list[Any] = []
    try:
        while True:
            frame = read_frame(inp)
            if frame is None:
                break
            kind = frame[0]
            if kind == "rows":
                rows = failed + list(frame[1])
                failed = []
                for i in range(0, len(rows), CHUNK):
                    try:
                        write(rows[i:i + CHUNK])
                    except errors as exc:  # busy or gone: keep, retry next frame
                        failed.extend(rows[i:])
                        text = str(getattr(exc, "message", exc)).replace("\n", " ")
                        out.write(f"error {text}\n")
                        out.flush()
                        break
            elif kind == "sync":
                out.write(f"{'ok' if not failed else 'error'} {frame[1]}\n")
                out.flush()
    finally:
        if failed:
            with contextlib.suppress(Exception):
                write(failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
