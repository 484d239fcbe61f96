"""The hot path of a streaming scan at the level of the database driver: the SQL and the
parameters of one batch of port results, without SQLAlchemy (the writer process of a
SQLite store needs nothing else, so it starts in ~30 ms instead of ~350 ms).

:meth:`portscope.store.api.Store.add_port_tuples` runs the same statements through
SQLAlchemy's connection (``exec_driver_sql``), so both paths write the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portscope.store import ranges as rg

PortTuple = tuple[str, str, int, str, str, "int | None", "str | None", "str | None",
                  "str | None", "str | None", float]
"""(address, protocol, port, state, reason, ttl, service name, product, version, service
JSON, seen as a POSIX timestamp): a port result as plain data, cheap to make, pickle and
send to the writer process."""

GroupKey = tuple[str, str, str, str, "int | None"]
"""(address, protocol, state, reason, TTL) of a port set."""
SetTuple = tuple[str, str, str, str, "int | None", list[int], float]
"""(address, protocol, state, reason, TTL, ports, seen): closed/filtered results without
a service, grouped by the scanning process (cheaper to make and send than a PortTuple
each)."""
Row = PortTuple | SetTuple


def results_in(rows: Any) -> int:
    """How many port results *rows* (PortTuples and SetTuples) hold."""
    return sum(len(r[5]) if len(r) == 7 else 1 for r in rows)

PORT_COLS = ("run_id", "address", "protocol", "port", "state", "reason", "ttl",
             "service_name", "product", "version", "service", "seen")
SET_COLS = ("run_id", "address", "protocol", "state", "reason", "ttl", "ports", "lo", "hi",
            "count", "seen")
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy keeps a DateTime in SQLite (naive UTC): what the driver must be given."""


def ports_sql(pg: bool) -> str:
    ph = "%s" if pg else "?"
    js = "CAST(%s AS json)" if pg else "?"
    values = ", ".join(js if c == "service" else ph for c in PORT_COLS)
    return (f"INSERT INTO ports ({', '.join(PORT_COLS)}) VALUES ({values}) "
            "ON CONFLICT (run_id, address, protocol, port) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in PORT_COLS[4:]))


def sets_sql(pg: bool) -> str:
    ph = "%s" if pg else "?"
    return (f"INSERT INTO port_sets ({', '.join(SET_COLS)}) "
            f"VALUES ({', '.join([ph] * len(SET_COLS))})")


def heartbeat_sql(pg: bool) -> str:
    ph = "%s" if pg else "?"
    return f"UPDATE runs SET heartbeat = {ph} WHERE id = {ph}"


def db_time(ts: float, sqlite: bool) -> Any:
    t = datetime.fromtimestamp(ts, UTC)
    return t.strftime(SQLITE_TIME) if sqlite else t


def split_batch(run_id: str, rows: Any, *, sqlite: bool
                ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The parameters of :func:`ports_sql` and :func:`sets_sql` for a batch. Results
    without a service that are not open (closed, filtered ...: the bulk of a scan) become
    one port set per (address, protocol, state, reason, TTL); the rest rows of their own.
    *rows* are :data:`PortTuple` s and :data:`SetTuple` s."""
    fromts = datetime.fromtimestamp
    port_rows: list[tuple[Any, ...]] = []
    groups: dict[GroupKey, list[int]] = {}
    latest: dict[GroupKey, float] = {}
    for row in rows:
        if len(row) == 7:  # a SetTuple
            address, proto, state, reason, ttl, ports, ts = row
            key = (address, proto, state, reason, ttl)
            members = groups.get(key)
            if members is None:
                groups[key] = list(ports)
                latest[key] = ts
            else:
                members.extend(ports)
                if ts > latest[key]:
                    latest[key] = ts
            continue
        address, proto, port, state, reason, ttl, name, product, version, doc, ts = row
        if doc is None and state != "open":
            key = (address, proto, state, reason, ttl)
            members = groups.get(key)
            if members is None:
                groups[key] = [port]
                latest[key] = ts
            else:
                members.append(port)
                if ts > latest[key]:
                    latest[key] = ts
            continue
        t_ = fromts(ts, UTC)
        when: Any = t_.strftime(SQLITE_TIME) if sqlite else t_
        port_rows.append((run_id, address, proto, port, state, reason, ttl, name, product,
                          version, doc, when))
    set_rows: list[tuple[Any, ...]] = []
    for key, members in groups.items():
        text, lo, hi, count = rg.encode(members)
        address, proto, state, reason, ttl = key
        set_rows.append((run_id, address, proto, state, reason, ttl, text, lo, hi, count,
                         db_time(latest[key], sqlite)))
    return port_rows, set_rows
