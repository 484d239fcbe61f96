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

    from portscope.errors import PortscopeError
    from portscope.store.api import open_store

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
    store = open_store(url, upgrade=False)
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
                    chunk = rows[i:i + CHUNK]
                    try:
                        with store.errors(), store.engine.begin() as conn:
                            store.add_port_tuples(conn, run_id, chunk)
                            store.heartbeat(run_id, conn=conn)
                    except PortscopeError as exc:  # busy or gone: keep, retry next frame
                        failed.extend(rows[i:])
                        out.write(f"error {exc.message}\n")
                        out.flush()
                        break
            elif kind == "sync":
                out.write(f"{'ok' if not failed else 'error'} {frame[1]}\n")
                out.flush()
    finally:
        if failed:
            try:
                with store.errors(), store.engine.begin() as conn:
                    store.add_port_tuples(conn, run_id, failed)
            except PortscopeError:
                pass
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
