"""The store API: one class over SQLAlchemy, the same on SQLite and PostgreSQL.

::

    store = open_store()                       # PORTSCOPE_DB, else the user's SQLite file
    store.save_run(run, source="import:xml")   # a whole run at once
    run = store.load_run("latest")             # ids, unique id prefixes, latest, latest~1
    for row in store.current(parse_query("state:open port:22")): ...
    store.close()

Scans write through :class:`portscope.store.writer.RunWriter`, which batches results and
commits them at short intervals. The model (:mod:`portscope.model`) is the unit of
exchange: what goes in comes out equal (``load_run(save_run(run)) == run`` up to port
order and collapsing of ``extraports``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from portscope.errors import DataError, PortscopeError, ServiceUnavailable, UsageError
from portscope.model import (
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Stats,
    address_key,
    expand_host,
    sort_ports,
    utcnow,
)
from portscope.store import fastpath
from portscope.store import ranges as rg
from portscope.store import schema as t
from portscope.store.fastpath import PortTuple, Row
from portscope.store.query import Query

DB_ENV = "PORTSCOPE_DB"
DB_FILENAME = "portscope.sqlite3"
HEAD_REVISION = "0002"
"""The newest migration; a database at an older revision is upgraded on open."""

STALE_AFTER = timedelta(seconds=60)
"""A run still marked running whose writer has not written for this long is shown as
incomplete (its process was killed)."""

_RESPONSIVE = frozenset({PortState.OPEN, PortState.CLOSED, PortState.UNFILTERED})


class StoreError(PortscopeError):
    """The store refused an operation (unknown run, schema too new ...)."""


class NoSuchRun(StoreError):
    exit_code = 66


class StoreWriteError(ServiceUnavailable):
    """Results could not be written to the store."""


# --------------------------------------------------------------------------------------
# URLs


def default_path() -> Path:
    """``$XDG_DATA_HOME/portscope/portscope.sqlite3`` (``~/.local/share/...``); the
    platform's user data directory elsewhere."""
    base = os.environ.get("XDG_DATA_HOME")
    if base and os.path.isabs(base):
        return Path(base) / "portscope" / DB_FILENAME
    import platformdirs

    return Path(platformdirs.user_data_dir("portscope", appauthor=False)) / DB_FILENAME


def resolve_url(url: str | None = None) -> str:
    """The SQLAlchemy URL for *url* (``--db``), else ``$PORTSCOPE_DB``, else the default
    SQLite file. Plain paths mean SQLite files; ``postgresql://`` uses psycopg 3."""
    text = (url or os.environ.get(DB_ENV) or "").strip()
    if not text:
        return f"sqlite:///{default_path()}"
    if "://" not in text:
        if text == ":memory:":
            return "sqlite://"
        return f"sqlite:///{Path(text).expanduser().absolute()}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg3"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("sqlite", "sqlite3"):
        return f"sqlite://{rest}"
    if scheme.startswith(("sqlite+", "postgresql+")):
        return text
    raise UsageError(f"unsupported database URL {scheme}://... (use a file path, "
                     f"sqlite:///PATH or postgresql://USER@HOST/DB)")


def display_url(url: str) -> str:
    """*url* without its password."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


@contextlib.contextmanager
def db_errors(url: str) -> Iterator[None]:
    """Database driver errors -> one-line :class:`ServiceUnavailable`."""
    try:
        yield
    except PortscopeError:
        raise
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        detail = str(orig if orig is not None else exc).strip().splitlines()
        text = detail[0] if detail else exc.__class__.__name__
        raise ServiceUnavailable(f"database {display_url(url)}: {text}") from None
    except OSError as exc:
        raise ServiceUnavailable(f"database {display_url(url)}: {exc}") from None


# --------------------------------------------------------------------------------------
# rows


@dataclass(frozen=True, slots=True)
class RunSummary:
    id: str
    started: datetime
    finished: datetime | None
    status: str  # running | complete | incomplete
    source: str
    command: str
    ports_spec: str
    targets: tuple[str, ...]
    hosts_up: int
    open_ports: int
    ports_stored: int
    watch: str | None
    resumable: bool

    def to_dict(self) -> dict[str, Any]:
        from portscope.model import format_time

        return {"id": self.id, "started": format_time(self.started),
                "finished": format_time(self.finished), "status": self.status,
                "source": self.source, "command": self.command, "ports_spec": self.ports_spec,
                "targets": list(self.targets), "hosts_up": self.hosts_up,
                "open_ports": self.open_ports, "ports_stored": self.ports_stored,
                "watch": self.watch, "resumable": self.resumable}


@dataclass(frozen=True, slots=True)
class PortRow:
    """One port of the current view or of the history."""

    address: str
    protocol: str
    port: int
    state: str
    reason: str
    service: Service | None
    first_seen: datetime
    last_seen: datetime
    run_id: str
    state_since: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        from portscope.model import format_time

        return {"address": self.address, "protocol": self.protocol, "port": self.port,
                "state": self.state, "reason": self.reason,
                "service": self.service.to_dict() if self.service else None,
                "first_seen": format_time(self.first_seen),
                "state_since": format_time(self.state_since),
                "last_seen": format_time(self.last_seen), "run_id": self.run_id}


def _aware(t_: datetime | None) -> datetime | None:
    if t_ is None:
        return None
    return t_.astimezone(UTC) if t_.tzinfo else t_.replace(tzinfo=UTC)


def _db_time(t_: datetime) -> datetime:
    """Times go in as naive UTC on SQLite (string compare must be right) and aware on
    PostgreSQL; both come back aware through :func:`_aware`."""
    return t_.astimezone(UTC)


def _service(d: Any) -> Service | None:
    if not d:
        return None
    try:
        return Service.from_dict(d)
    except DataError:
        return None


def port_tuple(address: str, p: PortResult, seen: float) -> PortTuple:
    svc = p.service
    if svc is None:
        return (address, p.protocol.value, p.port, p.state.value, p.reason, p.ttl, None,
                None, None, None, seen)
    return (address, p.protocol.value, p.port, p.state.value, p.reason, p.ttl, svc.name,
            svc.product, svc.version, json.dumps(svc.to_dict()), seen)


# --------------------------------------------------------------------------------------
# the store


class Store:
    """A portscope result store. Use :func:`open_store`."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def in_memory(self) -> bool:
        """An in-memory SQLite database: only this process can write it."""
        return self.dialect == "sqlite" and self.url.split("://", 1)[1] in ("", "/:memory:")

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def label(self) -> str:
        return display_url(self.url)

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return db_errors(self.url)

    def revision(self) -> str | None:
        with self.errors(), self.engine.connect() as conn:
            return self._revision(conn)

    @staticmethod
    def _revision(conn: Connection) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        return str(value) if value is not None else None

    def upgrade(self) -> tuple[str | None, str]:
        """Apply the migrations up to the head; returns (revision before, after)."""
        before = self.revision()
        if before == HEAD_REVISION:
            return before, HEAD_REVISION
        if before is not None and not before.isdigit():
            raise StoreError(f"database {self.label} is at revision {before!r}, unknown to "
                             f"this portscope: upgrade portscope")
        if before is not None and before > HEAD_REVISION:
            raise StoreError(f"database {self.label} was written by a newer portscope "
                             f"(schema {before}); upgrade portscope")
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.errors(), self.engine.begin() as conn:
                    if self.dialect == "postgresql":  # one migrating process at a time
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7270017)"))
                        if self._revision(conn) == HEAD_REVISION:
                            return before, HEAD_REVISION
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                return before, HEAD_REVISION
            except ServiceUnavailable:
                # another process migrates at the same moment (SQLite: its DDL is not
                # one transaction): wait until it is done, or take over where it stopped
                if self.revision() == HEAD_REVISION:
                    return before, HEAD_REVISION
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _upsert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # -- writing runs ------------------------------------------------------------------

    def begin_run(self, header: ScanRun, *, source: str = "scan",
                  options: Mapping[str, Any] | None = None, watch: str | None = None,
                  status: str = "running") -> None:
        """Create the run row (or, for a resumed run, mark it running again)."""
        row = {
            "id": header.id, "started": _db_time(header.started),
            "finished": _db_time(header.finished) if header.finished else None,
            "complete": header.complete, "status": status, "source": source,
            "command": header.command, "scan_types": list(header.scan_types),
            "ports_spec": header.ports_spec, "targets": list(header.targets),
            "vantage": header.vantage, "options": dict(options) if options else None,
            "extra": dict(header.extra), "stats": header.stats.to_dict(),
            "hosts_up": 0, "open_ports": 0, "watch": watch, "folded": False,
            "heartbeat": _db_time(utcnow()), "pid": os.getpid(),
        }
        with self.errors(), self.engine.begin() as conn:
            exists = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == header.id)
                                  ).first()
            if exists:
                conn.execute(t.runs.update().where(t.runs.c.id == header.id).values(
                    status=status, complete=False, finished=None, folded=False,
                    heartbeat=row["heartbeat"], pid=row["pid"]))
            else:
                conn.execute(t.runs.insert().values(**row))

    def add_ports(self, run_id: str, results: Sequence[tuple[str, PortResult, datetime]],
                  *, conn: Connection | None = None) -> None:
        """Store port results of a run (batched; re-storing a port updates it)."""
        if not results:
            return
        if conn is None:
            with self.errors(), self.engine.begin() as c:
                self._add_port_rows(c, run_id, results)
        else:
            self._add_port_rows(conn, run_id, results)

    # The hot path of a streaming scan: plain SQL through the driver's executemany, with
    # parameters converted here, is ~4x faster than Core's per-row processing.
    _CURRENT_LATEST = ("state", "reason", "service_name", "product", "version", "service",
                       "last_seen", "run_id")

    def _port_sql(self) -> tuple[str, str]:
        cached = getattr(self, "_port_sql_cache", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        pg = self.dialect == "postgresql"
        ph = "%s" if pg else "?"
        ports_sql = fastpath.ports_sql(pg)
        cur_cols = ("address", "protocol", "port", "state", "reason", "service_name",
                    "product", "version", "service", "first_seen", "state_since",
                    "last_seen", "run_id")
        newer = "current_ports.last_seen <= excluded.last_seen"
        sets = [f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE current_ports.{c} END"
                for c in self._CURRENT_LATEST]
        sets.append(f"state_since = CASE WHEN {newer} AND current_ports.state <> "
                    "excluded.state THEN excluded.last_seen ELSE current_ports.state_since END")
        sets.append("first_seen = CASE WHEN current_ports.first_seen <= excluded.first_seen "
                    "THEN current_ports.first_seen ELSE excluded.first_seen END")
        conflict = "ON CONFLICT (address, protocol, port) DO UPDATE SET " + ", ".join(sets)
        fold_sql = (f"INSERT INTO current_ports ({', '.join(cur_cols)}) "
                    "SELECT address, protocol, port, state, reason, service_name, product, "
                    f"version, service, seen, seen, seen, run_id FROM ports WHERE run_id = {ph} "
                    + conflict)
        # the same for ports of a port set that have a row of their own in the view
        self._fold_values_sql = (
            f"INSERT INTO current_ports ({', '.join(cur_cols)}) VALUES "
            f"({', '.join([ph] * len(cur_cols))}) " + conflict)
        self._port_sql_cache = (ports_sql, fold_sql)
        return ports_sql, fold_sql

    def _add_port_rows(self, conn: Connection, run_id: str,
                       results: Sequence[tuple[str, PortResult, datetime]]) -> None:
        self.add_port_tuples(conn, run_id, [port_tuple(a, p, seen.timestamp())
                                            for a, p, seen in results])

    def add_port_tuples(self, conn: Connection, run_id: str,
                        rows: Sequence[Row]) -> None:
        """The fast path: rows made by :func:`port_tuple`. Results without a service that
        are not open (the bulk of a scan: closed, filtered ...) go into ``port_sets``, one
        row per (address, protocol, state, reason, TTL) of the batch; the rest into
        ``ports`` (:mod:`portscope.store.fastpath`). The current view is updated from them
        when the run ends (:meth:`fold_current`)."""
        pg = self.dialect == "postgresql"
        port_rows, set_rows = fastpath.split_batch(run_id, rows, sqlite=not pg)
        if port_rows:
            conn.exec_driver_sql(fastpath.ports_sql(pg), port_rows)
        if set_rows:
            conn.exec_driver_sql(fastpath.sets_sql(pg), set_rows)

    def _sets_of(self, conn: Connection, run_id: str
                 ) -> dict[tuple[str, str, int], tuple[str, str, int | None, datetime]]:
        """The ports of a run's port sets: (address, protocol, port) -> (state, reason,
        TTL, seen); a later row wins over an earlier one."""
        s = t.port_sets.c
        out: dict[tuple[str, str, int], tuple[str, str, int | None, datetime]] = {}
        for r in conn.execute(sa.select(s.address, s.protocol, s.state, s.reason, s.ttl,
                                        s.ports, s.seen)
                              .where(s.run_id == run_id).order_by(s.pk)):
            value = (r.state, r.reason, r.ttl, _aware(r.seen) or utcnow())
            for n in rg.decode(r.ports):
                out[(r.address, r.protocol, n)] = value
        return out

    def _consolidate(self, conn: Connection, run_id: str) -> None:
        """Merge a run's port sets (one per batch) into one row per group, without the
        ports that also have a row in ``ports`` (those win; among sets the later row)."""
        s = t.port_sets.c
        rows = conn.execute(sa.select(s.pk, s.address, s.protocol, s.state, s.reason,
                                      s.ttl, s.ports, s.count, s.seen)
                            .where(s.run_id == run_id).order_by(s.pk)).all()
        if not rows:
            return
        p = t.ports.c
        own: dict[tuple[str, str], set[int]] = {}
        for a, pr, n in conn.execute(sa.select(p.address, p.protocol, p.port).where(
                p.run_id == run_id)):
            own.setdefault((a, pr), set()).add(n)
        GroupKey = tuple[str, str, str, str, "int | None"]
        keys = {(r.address, r.protocol, r.state, r.reason, r.ttl) for r in rows}
        if len(keys) == len(rows) and not own:
            return  # already one row per group (a second fold, a single batch)
        by_host: dict[tuple[str, str], list[Any]] = {}
        for r in rows:
            by_host.setdefault((r.address, r.protocol), []).append(r)
        spans: dict[GroupKey, list[tuple[int, int]]] = {}
        latest: dict[GroupKey, datetime] = {}
        for host, hrows in by_host.items():
            # one byte per port: the group that has it (the later row wins), 0 for none
            groups: dict[GroupKey, int] = {}
            for r in hrows:
                key = (r.address, r.protocol, r.state, r.reason, r.ttl)
                groups.setdefault(key, len(groups) + 1)
                seen = _aware(r.seen) or utcnow()
                if key not in latest or seen > latest[key]:
                    latest[key] = seen
            if len(groups) > 255:
                raise StoreError(f"run {run_id}: more than 255 kinds of port results for "
                                 f"{host[0]} {host[1]}")
            marks = bytearray(65536)
            for r in hrows:
                rg.mark(marks, r.ports,
                        groups[(r.address, r.protocol, r.state, r.reason, r.ttl)])
            for n in own.get(host, ()):
                if 0 <= n < 65536:
                    marks[n] = 0
            for key, value in groups.items():
                found = rg.runs_of(marks, value)
                if found:
                    spans[key] = found
        conn.execute(t.port_sets.delete().where(s.pk.in_([r.pk for r in rows])))
        new_rows = []
        for key, members in spans.items():
            text, lo, hi, count = rg.encode_spans(members)
            address, proto, state, reason, ttl = key
            new_rows.append({"run_id": run_id, "address": address, "protocol": proto,
                             "state": state, "reason": reason, "ttl": ttl, "ports": text,
                             "lo": lo, "hi": hi, "count": count,
                             "seen": _db_time(latest[key])})
        if new_rows:
            conn.execute(t.port_sets.insert(), new_rows)

    def fold_current(self, conn: Connection, run_id: str) -> None:
        """Merge a run's stored ports into the current view (one set-based statement;
        idempotent, and an older run never overwrites newer knowledge)."""
        _, fold_sql = self._port_sql()
        self._consolidate(conn, run_id)
        p, s = t.ports.c, t.port_sets.c
        own: dict[tuple[str, str], list[int]] = {}
        for a, pr, n in conn.execute(sa.select(p.address, p.protocol, p.port).where(
                p.run_id == run_id)):
            own.setdefault((a, pr), []).append(n)
        sets: dict[tuple[str, str], list[Any]] = {}
        for r in conn.execute(sa.select(s.address, s.protocol, s.state, s.reason, s.ports,
                                        s.lo, s.hi, s.seen)
                              .where(s.run_id == run_id).order_by(s.pk)):
            sets.setdefault((r.address, r.protocol), []).append(r)
        # a port of the run's own rows that the view knew only from a range gets its own
        # row first (with what the range knew), then the per-port fold updates it
        for key, members in own.items():
            self._fold_ranges(conn, run_id, key, members, [])
        conn.exec_driver_sql(fold_sql, (run_id,))
        for key, set_rows in sets.items():
            self._fold_ranges(conn, run_id, key, [], set_rows)
        conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(folded=True))

    def _fold_ranges(self, conn: Connection, run_id: str, key: tuple[str, str],
                     own: list[int], set_rows: list[Any]) -> None:
        """Fold one (address, protocol) of a run's port sets into ``current_ranges``; ports
        that have a row in ``current_ports`` are updated there instead."""
        address, proto = key
        cr, cp = t.current_ranges.c, t.current_ports.c
        segs = [rg.Segment(r.lo, r.hi, rg.Attrs(r.state, r.reason,
                                                _aware(r.first_seen) or utcnow(),
                                                _aware(r.state_since) or utcnow(),
                                                _aware(r.last_seen) or utcnow(), r.run_id))
                for r in conn.execute(sa.select(t.current_ranges).where(
                    cr.address == address, cr.protocol == proto).order_by(cr.lo))]
        before = list(segs)
        if own and segs:
            segs, taken = rg.remove(segs, own)
            if taken:
                conn.execute(t.current_ports.insert(), [
                    {"address": address, "protocol": proto, "port": n, "state": a.state,
                     "reason": a.reason, "first_seen": _db_time(a.first_seen),
                     "state_since": _db_time(a.state_since),
                     "last_seen": _db_time(a.last_seen), "run_id": a.run_id}
                    for n, a in taken.items()])
        if set_rows:
            lo = min(r.lo for r in set_rows)
            hi = max(r.hi for r in set_rows)
            known = set(conn.execute(sa.select(cp.port).where(
                cp.address == address, cp.protocol == proto, cp.port.between(lo, hi)
            )).scalars())
            values: list[tuple[Any, ...]] = []
            sqlite = self.dialect == "sqlite"
            for r in set_rows:
                seen = _aware(r.seen) or utcnow()
                spans = list(rg.decode_ranges(r.ports))
                inside = sorted(n for n in known if rg.covers(spans, n))
                if inside:
                    when: Any = seen.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else seen
                    values.extend((address, proto, n, r.state, r.reason, None, None, None,
                                   None, when, when, when, run_id) for n in inside)
                    spans = rg.subtract(spans, inside)

                def update(old: rg.Attrs | None, r: Any = r, seen: datetime = seen
                           ) -> rg.Attrs:
                    return rg.observe(old, r.state, r.reason, seen, run_id)

                segs = rg.overlay_many(segs, spans, update)
            if values:
                self._port_sql()
                conn.exec_driver_sql(self._fold_values_sql, values)
        if segs != before:
            conn.execute(t.current_ranges.delete().where(cr.address == address,
                                                         cr.protocol == proto))
            if segs:
                conn.execute(t.current_ranges.insert(), [
                    {"address": address, "protocol": proto, "lo": g.lo, "hi": g.hi,
                     "state": g.attrs.state, "reason": g.attrs.reason,
                     "first_seen": _db_time(g.attrs.first_seen),
                     "state_since": _db_time(g.attrs.state_since),
                     "last_seen": _db_time(g.attrs.last_seen), "run_id": g.attrs.run_id}
                    for g in segs])

    def _fold_killed(self) -> None:
        """Fold runs whose process died before it could (killed scans)."""
        with self.errors(), self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.runs).where(t.runs.c.folded.is_(False))).all()
        for row in rows:
            if self._status(row) == "incomplete":
                with self.errors(), self.engine.begin() as conn:
                    self.fold_current(conn, row.id)

    def heartbeat(self, run_id: str, *, conn: Connection | None = None) -> None:
        stmt = t.runs.update().where(t.runs.c.id == run_id).values(heartbeat=_db_time(utcnow()))
        if conn is None:
            with self.errors(), self.engine.begin() as c:
                c.execute(stmt)
        else:
            conn.execute(stmt)

    def finish_run(self, run: ScanRun, *, changed_ports: Iterable[tuple[str, PortResult]] = (),
                   seen: datetime | None = None) -> None:
        """Store the final state of a run: hosts, findings, stats, status. Ports must
        have been stored already (``add_ports``); *changed_ports* are re-stored (results
        that were enriched after they were streamed)."""
        now = seen or run.finished or utcnow()
        with self.errors(), self.engine.begin() as conn:
            changed = [(a, p, now) for a, p in changed_ports]
            if changed:
                self.add_ports(run.id, changed, conn=conn)
            self._write_hosts(conn, run)
            open_count = conn.execute(
                sa.select(sa.func.count()).select_from(t.ports).where(
                    t.ports.c.run_id == run.id, t.ports.c.state == PortState.OPEN.value)
            ).scalar_one()
            conn.execute(t.runs.update().where(t.runs.c.id == run.id).values(
                finished=_db_time(run.finished) if run.finished else None,
                complete=run.complete,
                status="complete" if run.complete else "incomplete",
                stats=run.stats.to_dict(), extra=dict(run.extra),
                hosts_up=sum(1 for h in run.hosts if h.status is HostStatus.UP),
                open_ports=open_count, heartbeat=_db_time(utcnow())))
            self.fold_current(conn, run.id)

    def _write_hosts(self, conn: Connection, run: ScanRun) -> None:
        conn.execute(t.hosts.delete().where(t.hosts.c.run_id == run.id))
        conn.execute(t.findings.delete().where(t.findings.c.run_id == run.id))
        host_rows: list[dict[str, Any]] = []
        finding_rows: list[dict[str, Any]] = []
        for h in run.hosts:
            doc = replace(h, ports=(), findings=()).to_dict()  # (ports are stored apart)
            for key in ("ports", "findings", "address", "status", "reason", "hostnames"):
                doc.pop(key, None)
            host_rows.append({"run_id": run.id, "address": h.address, "status": h.status.value,
                              "reason": h.reason, "hostnames": list(h.hostnames), "doc": doc})
            finding_rows.extend(
                {"run_id": run.id, "address": h.address, "finding_id": f.id,
                 "check_id": f.check, "severity": f.severity.value, "port": f.port,
                 "protocol": f.protocol.value if f.protocol else None, "doc": f.to_dict()}
                for f in h.findings)
        if host_rows:
            conn.execute(t.hosts.insert(), host_rows)
        if finding_rows:
            conn.execute(t.findings.insert(), finding_rows)

    def save_run(self, run: ScanRun, *, source: str = "scan", watch: str | None = None,
                 options: Mapping[str, Any] | None = None, replace_existing: bool = False
                 ) -> None:
        """Store a whole run at once (imports, finished scans)."""
        if self.has_run(run.id):
            if not replace_existing:
                raise StoreError(f"run {run.id} is already in the store")
            self.delete_run(run.id)
        self.begin_run(replace(run, hosts=()), source=source, watch=watch, options=options,
                       status="complete" if run.complete else "incomplete")
        seen = run.finished or run.started
        results = [(h.address, p, seen) for h0 in run.hosts
                   for h in (expand_host(h0),) for p in h.ports]
        # hosts whose extraports have no port lists (some imports) keep them in their doc
        for i in range(0, len(results), 5000):
            self.add_ports(run.id, results[i:i + 5000])
        self.finish_run(run)

    def delete_run(self, ref: str) -> str:
        run_id = self.resolve(ref)
        with self.errors(), self.engine.begin() as conn:
            for table in (t.findings, t.ports, t.port_sets, t.hosts):
                conn.execute(table.delete().where(table.c.run_id == run_id))
            conn.execute(t.runs.delete().where(t.runs.c.id == run_id))
        return run_id

    # -- reading runs ------------------------------------------------------------------

    def has_run(self, run_id: str) -> bool:
        with self.errors(), self.engine.connect() as conn:
            return conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)
                                ).first() is not None

    def resolve(self, ref: str) -> str:
        """A run id from *ref*: an id, a unique prefix of one, ``latest`` or ``latest~N``
        (N runs before the latest)."""
        ref = ref.strip()
        m = re.fullmatch(r"(?:latest|last)(?:~(\d+))?", ref)
        with self.errors(), self.engine.connect() as conn:
            if m:
                back = int(m.group(1) or 0)
                row = conn.execute(sa.select(t.runs.c.id).order_by(
                    t.runs.c.started.desc(), t.runs.c.id.desc()).offset(back).limit(1)).first()
                if row is None:
                    raise NoSuchRun(f"no run {ref!r}: the store {self.label} has "
                                    f"{'no runs' if back == 0 else 'fewer runs'}")
                return str(row[0])
            row = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == ref)).first()
            if row is not None:
                return str(row[0])
            esc = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = conn.execute(sa.select(t.runs.c.id).where(
                t.runs.c.id.like(esc + "%", escape="\\")).limit(3)).all()
        if len(rows) == 1:
            return str(rows[0][0])
        if not rows:
            raise NoSuchRun(f"no run {ref!r} in {self.label} ('portscope runs' lists them)")
        raise UsageError(f"run {ref!r} is ambiguous ({', '.join(r[0] for r in rows)}, ...)")

    def _status(self, row: Any) -> str:
        status = str(row.status)
        if status == "running":
            beat = _aware(row.heartbeat)
            if beat is None or utcnow() - beat > STALE_AFTER:
                return "incomplete"
            if row.pid and str(row.vantage).startswith(f"{socket.gethostname()} ") \
                    and not _pid_alive(int(row.pid)):
                return "incomplete"  # the scanning process on this machine is gone
        return status

    def mark_incomplete(self, run_id: str) -> None:
        """A scan that stopped without finishing (an error, a second Ctrl-C)."""
        with self.errors(), self.engine.begin() as conn:
            conn.execute(t.runs.update().where(t.runs.c.id == run_id,
                                               t.runs.c.status == "running").values(
                status="incomplete", complete=False))
            self.fold_current(conn, run_id)

    def runs(self, *, limit: int | None = None, watch: str | None = None,
             status: str | None = None) -> list[RunSummary]:
        """Runs, newest first."""
        counts = (sa.select(t.ports.c.run_id, sa.func.count().label("n"))
                  .group_by(t.ports.c.run_id).subquery())
        in_sets = (sa.select(t.port_sets.c.run_id,
                             sa.func.sum(t.port_sets.c.count).label("n"))
                   .group_by(t.port_sets.c.run_id).subquery())
        q = (sa.select(t.runs, (sa.func.coalesce(counts.c.n, 0)
                                + sa.func.coalesce(in_sets.c.n, 0)).label("n"))
             .outerjoin(counts, counts.c.run_id == t.runs.c.id)
             .outerjoin(in_sets, in_sets.c.run_id == t.runs.c.id)
             .order_by(t.runs.c.started.desc(), t.runs.c.id.desc()))
        if watch is not None:
            q = q.where(t.runs.c.watch == watch)
        out = []
        with self.errors(), self.engine.connect() as conn:
            for row in conn.execute(q):
                st = self._status(row)
                if status is not None and st != status:
                    continue
                out.append(RunSummary(
                    id=row.id, started=_aware(row.started) or utcnow(),
                    finished=_aware(row.finished), status=st, source=row.source,
                    command=row.command, ports_spec=row.ports_spec,
                    targets=tuple(row.targets or ()), hosts_up=row.hosts_up,
                    open_ports=row.open_ports if st != "incomplete" or row.open_ports
                    else self._count_open(conn, row.id),
                    ports_stored=int(row.n), watch=row.watch,
                    resumable=st == "incomplete" and bool(row.options)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def _count_open(self, conn: Connection, run_id: str) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.ports).where(
            t.ports.c.run_id == run_id, t.ports.c.state == "open")).scalar_one())

    def run_options(self, ref: str) -> tuple[str, dict[str, Any] | None, str]:
        """(run id, stored options, status) of a run, for ``--resume``."""
        run_id = self.resolve(ref)
        with self.errors(), self.engine.connect() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).one()
        return run_id, (dict(row.options) if row.options else None), self._status(row)

    def load_run(self, ref: str) -> ScanRun:
        """The run *ref* as a :class:`ScanRun` (hosts expanded: every stored port listed).
        A run cut short (killed scan) has hosts rebuilt from its ports."""
        run_id = self.resolve(ref)
        with self.errors(), self.engine.connect() as conn:
            r = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).one()
            host_rows = conn.execute(sa.select(t.hosts).where(t.hosts.c.run_id == run_id)).all()
            port_rows = conn.execute(sa.select(t.ports).where(t.ports.c.run_id == run_id)).all()
            finding_rows = conn.execute(sa.select(t.findings).where(
                t.findings.c.run_id == run_id).order_by(t.findings.c.pk)).all()
            in_sets = self._sets_of(conn, run_id)
        ports: dict[str, list[PortResult]] = {}
        for p in port_rows:
            ports.setdefault(p.address, []).append(PortResult(
                port=p.port, protocol=Protocol(p.protocol), state=PortState(p.state),
                reason=p.reason, ttl=p.ttl, service=_service(p.service)))
            in_sets.pop((p.address, p.protocol, p.port), None)  # its own row wins
        for (address, proto, n), (state, reason, ttl, _) in in_sets.items():
            ports.setdefault(address, []).append(PortResult(
                port=n, protocol=Protocol(proto), state=PortState(state), reason=reason,
                ttl=ttl))
        found: dict[str, list[Finding]] = {}
        for f in finding_rows:
            with contextlib.suppress(DataError):
                found.setdefault(f.address, []).append(Finding.from_dict(f.doc))
        hosts: list[Host] = []
        for h in host_rows:
            doc = dict(h.doc or {})
            doc.update(address=h.address, status=h.status, reason=h.reason,
                       hostnames=list(h.hostnames or ()), ports=[], findings=[])
            host = Host.from_dict(doc)
            hosts.append(replace(host, ports=tuple(sort_ports(ports.pop(h.address, []))),
                findings=tuple(found.pop(h.address, []))))
        for address, plist in ports.items():  # streamed ports of a run cut short
            answer = next((p.reason for p in plist if p.state in _RESPONSIVE), None)
            hosts.append(Host(address=address, status=HostStatus.UP if answer else
                              HostStatus.UNKNOWN, reason=answer or "",
                              ports=tuple(sorted(plist, key=lambda p: (p.protocol.value,
                                                                       p.port))),
                              findings=tuple(found.pop(address, []))))
        hosts.sort(key=lambda h: address_key(h.address))
        status = self._status(r)
        try:
            stats = Stats.from_dict(r.stats or {})
        except DataError:
            stats = Stats()
        return ScanRun(
            id=r.id, started=_aware(r.started) or utcnow(), finished=_aware(r.finished),
            command=r.command, scan_types=tuple(r.scan_types or ()), ports_spec=r.ports_spec,
            targets=tuple(r.targets or ()), vantage=r.vantage,
            complete=bool(r.complete) and status == "complete", hosts=tuple(hosts),
            stats=stats, extra=dict(r.extra or {}))

    def decided(self, run_id: str) -> set[tuple[str, str, int]]:
        """(address, protocol, port) of every port result stored for a run."""
        p = t.ports.c
        with self.errors(), self.engine.connect() as conn:
            out = {(a, pr, n) for a, pr, n in conn.execute(
                sa.select(p.address, p.protocol, p.port).where(p.run_id == run_id))}
            out.update(self._sets_of(conn, run_id))
        return out

    def latest_run_id(self, *, watch: str | None = None, complete_only: bool = True,
                      before: str | None = None) -> str | None:
        q = sa.select(t.runs.c.id, t.runs.c.started).order_by(
            t.runs.c.started.desc(), t.runs.c.id.desc())
        if watch is not None:
            q = q.where(t.runs.c.watch == watch)
        if complete_only:
            q = q.where(t.runs.c.status == "complete")
        with self.errors(), self.engine.connect() as conn:
            if before is not None:
                started = conn.execute(sa.select(t.runs.c.started).where(
                    t.runs.c.id == before)).scalar()
                if started is not None:
                    q = q.where(t.runs.c.started < started)
            row = conn.execute(q.limit(1)).first()
        return str(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        """Rows per table (``portscope db info``); ``ports`` and ``current_ports`` count
        port results, also those stored compactly (``port_sets``, ``current_ranges``)."""
        out = {}
        with self.errors(), self.engine.connect() as conn:
            for table in (t.runs, t.hosts, t.ports, t.port_sets, t.findings, t.current_ports,
                          t.current_ranges, t.alerts, t.mutes, t.watches):
                out[table.name] = int(conn.execute(
                    sa.select(sa.func.count()).select_from(table)).scalar_one())
            # ports and current_ports count port results, wherever they are stored
            out["ports"] += int(conn.execute(sa.select(sa.func.coalesce(
                sa.func.sum(t.port_sets.c.count), 0))).scalar_one())
            cr = t.current_ranges.c
            out["current_ports"] += int(conn.execute(sa.select(sa.func.coalesce(
                sa.func.sum(cr.hi - cr.lo + 1), 0))).scalar_one())
        return out

    # -- queries -------------------------------------------------------------------------

    def current(self, query: Query | None = None, *, limit: int | None = None) -> list[PortRow]:
        """The merged current view: the latest known state of each (address, protocol,
        port), with first seen, state since and last seen. Runs still being scanned join
        it when they end."""
        self._fold_killed()
        c = t.current_ports.c
        q = sa.select(t.current_ports)
        if query is not None:
            q = query.apply(q, c, time_col=c.last_seen, dialect=self.dialect)
        q = q.order_by(c.address, c.protocol, c.port)
        cr = t.current_ranges.c
        rq = sa.select(t.current_ranges)
        if query is not None:
            rq = query.apply(rq, _SetColumns(cr), time_col=cr.last_seen,
                             dialect=self.dialect, ports=False)
            rq = _port_bounds(rq, query, cr)
        out = []
        with self.errors(), self.engine.connect() as conn:
            for r in conn.execute(q):
                if query is not None and not query.host_ok(r.address):
                    continue
                out.append(PortRow(address=r.address, protocol=r.protocol, port=r.port,
                                   state=r.state, reason=r.reason, service=_service(r.service),
                                   first_seen=_aware(r.first_seen) or utcnow(),
                                   state_since=_aware(r.state_since),
                                   last_seen=_aware(r.last_seen) or utcnow(), run_id=r.run_id))
            for r in conn.execute(rq):
                if query is not None and not query.host_ok(r.address):
                    continue
                first, since = _aware(r.first_seen) or utcnow(), _aware(r.state_since)
                last = _aware(r.last_seen) or utcnow()
                for n in range(r.lo, r.hi + 1):
                    if query is None or query.port_ok(n):
                        out.append(PortRow(address=r.address, protocol=r.protocol, port=n,
                                           state=r.state, reason=r.reason, service=None,
                                           first_seen=first, state_since=since,
                                           last_seen=last, run_id=r.run_id))
        out.sort(key=lambda r: (address_key(r.address), r.protocol, r.port))
        return out if limit is None else out[:limit]

    def history(self, query: Query | None = None, *, limit: int | None = None
                ) -> list[PortRow]:
        """Every stored observation matching *query*, oldest first."""
        c = t.ports.c
        q = sa.select(t.ports)
        if query is not None:
            q = query.apply(q, c, time_col=c.seen, dialect=self.dialect)
        q = q.order_by(c.seen, c.address, c.protocol, c.port)
        s = t.port_sets.c
        sq = sa.select(t.port_sets, t.runs.c.folded).join(t.runs, t.runs.c.id == s.run_id)
        if query is not None:
            sq = query.apply(sq, _SetColumns(s), time_col=s.seen, dialect=self.dialect,
                             ports=False)
            sq = _port_bounds(sq, query, s)
        sq = sq.order_by(s.pk)
        out = []
        with self.errors(), self.engine.connect() as conn:
            own: set[tuple[str, str, str, int]] = set()
            for r in conn.execute(q):
                own.add((r.run_id, r.address, r.protocol, r.port))
                if query is not None and not query.host_ok(r.address):
                    continue
                seen = _aware(r.seen) or utcnow()
                out.append(PortRow(address=r.address, protocol=r.protocol, port=r.port,
                                   state=r.state, reason=r.reason, service=_service(r.service),
                                   first_seen=seen, last_seen=seen, run_id=r.run_id))
            set_rows = [r for r in conn.execute(sq)
                        if query is None or query.host_ok(r.address)]
            unfolded = sorted({r.run_id for r in set_rows if not r.folded})
            if unfolded:  # a run not consolidated yet: its own rows win over its sets
                own = set(conn.execute(sa.select(c.run_id, c.address, c.protocol, c.port)
                                       .where(c.run_id.in_(unfolded))).tuples())
            found: dict[tuple[str, str, str, int], PortRow] = {}
            for r in set_rows:
                seen = _aware(r.seen) or utcnow()
                for n in rg.decode(r.ports):
                    if query is not None and not query.port_ok(n):
                        continue
                    k = (r.run_id, r.address, r.protocol, n)
                    if not r.folded and k in own:
                        continue
                    found[k] = PortRow(address=r.address, protocol=r.protocol, port=n,
                                       state=r.state, reason=r.reason, service=None,
                                       first_seen=seen, last_seen=seen, run_id=r.run_id)
        if found:
            out.extend(found.values())
            out.sort(key=lambda r: (r.last_seen, r.address, r.protocol, r.port))
        return out if limit is None else out[:limit]

    # -- alerts, mutes, watches --------------------------------------------------------------

    def alert_rows(self, *, watch: str | None = None, status: str | None = None
                   ) -> list[dict[str, Any]]:
        q = sa.select(t.alerts).order_by(t.alerts.c.first_seen)
        if watch is not None:
            q = q.where(t.alerts.c.watch == watch)
        if status is not None:
            q = q.where(t.alerts.c.status == status)
        with self.errors(), self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            for k in ("first_seen", "last_seen", "sent"):
                r[k] = _aware(r[k])
        return rows

    def put_alert(self, row: Mapping[str, Any]) -> None:
        data = dict(row)
        for k in ("first_seen", "last_seen", "sent"):
            if data.get(k) is not None:
                data[k] = _db_time(data[k])
        ins = self._upsert(t.alerts)
        with self.errors(), self.engine.begin() as conn:
            conn.execute(ins.on_conflict_do_update(
                index_elements=["key"],
                set_={k: ins.excluded[k] for k in data if k != "key"}).values(**data))

    def mutes(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """Mutes in force (expired ones are left out)."""
        now = now or utcnow()
        with self.errors(), self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(t.mutes).order_by(t.mutes.c.scope))]
        out = []
        for r in rows:
            r["until"] = _aware(r["until"])
            r["created"] = _aware(r["created"])
            if r["until"] is None or r["until"] > now:
                out.append(r)
        return out

    def mute(self, scope: str, *, until: datetime | None = None, reason: str = "") -> None:
        ins = self._upsert(t.mutes)
        row = {"scope": scope, "until": _db_time(until) if until else None, "reason": reason,
               "created": _db_time(utcnow())}
        with self.errors(), self.engine.begin() as conn:
            conn.execute(ins.on_conflict_do_update(
                index_elements=["scope"],
                set_={"until": ins.excluded.until, "reason": ins.excluded.reason}).values(**row))

    def unmute(self, scope: str) -> bool:
        with self.errors(), self.engine.begin() as conn:
            res = conn.execute(t.mutes.delete().where(t.mutes.c.scope == scope))
        return bool(res.rowcount)

    def watch_state(self, name: str) -> dict[str, Any] | None:
        with self.errors(), self.engine.connect() as conn:
            row = conn.execute(sa.select(t.watches).where(t.watches.c.name == name)).first()
        if row is None:
            return None
        d = dict(row._mapping)
        d["last_started"] = _aware(d["last_started"])
        return d

    def put_watch(self, name: str, *, options: Mapping[str, Any], every_s: float,
                  last_run_id: str | None = None, last_started: datetime | None = None
                  ) -> None:
        ins = self._upsert(t.watches)
        row: dict[str, Any] = {"name": name, "options": dict(options), "every_s": every_s,
                               "updated": _db_time(utcnow())}
        if last_run_id is not None:
            row["last_run_id"] = last_run_id
            row["last_started"] = _db_time(last_started or utcnow())
        with self.errors(), self.engine.begin() as conn:
            conn.execute(ins.on_conflict_do_update(
                index_elements=["name"],
                set_={k: ins.excluded[k] for k in row if k != "name"}).values(**row))


class _SetColumns:
    """The port columns of ``port_sets``/``current_ranges`` for :meth:`Query.apply`:
    ports stored there have no service (NULL, as in a per-port row without one)."""

    def __init__(self, cols: Any) -> None:
        self.protocol = cols.protocol
        self.state = cols.state
        self.reason = cols.reason
        self.run_id = cols.run_id
        self.service_name = self.product = self.version = sa.null()


def _port_bounds(select: Any, query: Query, cols: Any) -> Any:
    """Leave out the rows whose port range misses the query's positive port terms."""
    for lo, hi in query.port_ranges() or ():
        select = select.where(cols.hi >= lo, cols.lo <= hi)
    return select


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a killed process (not a power cut)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ServiceUnavailable(
                    f"cannot create the database directory {Path(path).parent}: "
                    f"{exc.strerror or exc}") from None
        if not path or path == ":memory:":  # one shared in-memory database (tests)
            from sqlalchemy.pool import StaticPool

            engine = sa.create_engine(url, connect_args={"check_same_thread": False},
                                      poolclass=StaticPool)
        else:
            engine = sa.create_engine(url, connect_args={"check_same_thread": False,
                                                         "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ServiceUnavailable("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'"
                                     ) from None
        return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    return sa.create_engine(url)


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open the store at *url* (see :func:`resolve_url`), applying pending migrations."""
    resolved = resolve_url(url)
    with db_errors(resolved):
        engine = create_engine(resolved)
    store = Store(resolved, engine)
    try:
        if upgrade:
            store.upgrade()
    except BaseException:
        store.close()
        raise
    return store
