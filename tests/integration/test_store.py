"""The store API: one suite, run against SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from portscope.errors import UsageError
from portscope.model import (
    ExtraPorts,
    ExtraReason,
    Finding,
    Host,
    HostStatus,
    OSGuess,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
    Stats,
)
from portscope.store import HEAD_REVISION, NoSuchRun, RunWriter, Store, open_store, parse_query
from portscope.store import schema as t

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = str(tmp_path / "store.sqlite3")
    else:
        url = request.getfixturevalue("postgres_url")
    s = open_store(url)
    try:
        yield s
    finally:
        s.close()


def p(n: int, state: PortState = PortState.OPEN, svc: Service | None = None,
      proto: Protocol = Protocol.TCP) -> PortResult:
    reason = {PortState.OPEN: "syn-ack", PortState.CLOSED: "conn-refused"}.get(
        state, "no-response")
    return PortResult(n, proto, state, reason, ttl=64 if state is PortState.OPEN else None,
                      service=svc)


def rich_run(rid: str = "r1", started: datetime = T0) -> ScanRun:
    tls = {"sha256": "ab" * 32, "not_after": "2026-01-01T00:00:00Z", "versions": ["TLSv1.3"]}
    h1 = Host(
        "198.18.0.2", HostStatus.UP, "syn-ack", hostnames=("lab.example",),
        ports=(p(22, svc=Service("ssh", "OpenSSH", "9.2p1", banner="SSH-2.0-OpenSSH_9.2p1\x00",
                                  method="banner", confidence=8, cpe=("cpe:/a:openbsd:openssh",),
                                  extra={"kex": ["curve25519-sha256"]})),
               p(443, svc=Service("https", method="probe", tls=tls, tunnel="ssl")),
               p(53, PortState.OPEN_FILTERED, proto=Protocol.UDP),
               *(p(n, PortState.CLOSED) for n in range(1, 21))),
        os=OSGuess("Linux 6.x", 90, family="Linux", cpe=("cpe:/o:linux:linux_kernel:6",)),
        findings=(Finding("telnet:23", "telnet", Severity.HIGH, "cleartext", "Telnet",
                          port=22, protocol=Protocol.TCP, references=("https://x",),
                          extra={"k": [1, 2]}),
                  Finding("host:1", "host-check", Severity.INFO, "", "Host note")),
        mac="02:00:00:00:00:01", rtt_ms=0.5, extra={"note": "ü ✓"})
    h2 = Host("198.18.0.3", HostStatus.DOWN, "no-response")
    # an imported host whose extraports came without port lists
    h3 = Host("2001:db8::5", HostStatus.UP, "syn-ack", ports=(p(80),),
              extraports=(ExtraPorts(PortState.CLOSED, 999, (ExtraReason(
                  "reset", 999, Protocol.TCP, ""),)),))
    return ScanRun(id=rid, started=started, finished=started + timedelta(seconds=5),
                   command="portscope scan -p 1-1000 198.18.0.0/30", scan_types=("connect",),
                   ports_spec="T:1-1000,U:53", targets=("198.18.0.0/30", "2001:db8::5"),
                   vantage="test", hosts=(h1, h2, h3),
                   stats=Stats(probes_sent=10, replies=5, duration_s=5.0, pps=2.0,
                               hosts_total=3, hosts_up=2),
                   extra={"seed": 42, "shard": [0, 1]}).with_hosts(
        replace(h, ports=tuple(sorted(h.ports, key=lambda x: (x.protocol.value, x.port))))
        for h in (h1, h2, h3))


def test_schema_is_at_head(store: Store) -> None:
    assert store.revision() == HEAD_REVISION
    assert store.upgrade() == (HEAD_REVISION, HEAD_REVISION)
    names = set(sa.inspect(store.engine).get_table_names())
    assert {tb.name for tb in t.metadata.sorted_tables} <= names


def test_round_trip_is_loss_free(store: Store) -> None:
    run = rich_run()
    store.save_run(run, source="import:test")
    back = store.load_run("r1")
    assert back == run
    assert store.load_run("latest") == run


def test_resolve_refs(store: Store) -> None:
    store.save_run(rich_run("20250301T100000Z-aaaaaa", T0))
    store.save_run(rich_run("20250301T110000Z-bbbbbb", T0 + timedelta(hours=1)))
    assert store.resolve("latest") == "20250301T110000Z-bbbbbb"
    assert store.resolve("latest~1") == "20250301T100000Z-aaaaaa"
    assert store.resolve("20250301T10") == "20250301T100000Z-aaaaaa"
    with pytest.raises(UsageError, match="ambiguous"):
        store.resolve("20250301T")
    with pytest.raises(NoSuchRun):
        store.resolve("nope")
    with pytest.raises(NoSuchRun):
        store.resolve("latest~5")
    assert [r.id for r in store.runs()] == ["20250301T110000Z-bbbbbb", "20250301T100000Z-aaaaaa"]
    store.delete_run("latest")
    assert [r.id for r in store.runs()] == ["20250301T100000Z-aaaaaa"]


def test_writer_streams_and_commits_in_batches(store: Store) -> None:
    header = ScanRun(id="s1", started=T0, ports_spec="T:1-2000", targets=("198.18.0.2",),
                     complete=False)
    w = RunWriter(store, options={"targets": ["198.18.0.2"], "seed": 7}, interval=0.05)
    w.start(header)
    for n in range(1, 2001):
        w.port("198.18.0.2", p(n, PortState.OPEN if n % 500 == 0 else PortState.CLOSED))
    deadline = time.monotonic() + 10
    while len(store.decided("s1")) < 2000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(store.decided("s1")) == 2000  # committed before finish()
    (summary,) = store.runs()
    assert summary.status == "running"
    # the final run enriches a port (service detection after the scan)
    ports = [p(n, PortState.OPEN if n % 500 == 0 else PortState.CLOSED) for n in range(1, 2001)]
    ports[499] = p(500, svc=Service("ntalk", "x", "1", method="probe"))
    final = replace(header, complete=True, finished=T0 + timedelta(seconds=3), hosts=(
        Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=tuple(ports)),))
    w.finish(final)
    assert w.batches >= 1 and w.rows == 2000
    back = store.load_run("s1")
    assert back == final
    (summary,) = store.runs()
    assert (summary.status, summary.open_ports, summary.ports_stored) == ("complete", 4, 2000)
    _, options, status = store.run_options("s1")
    assert options == {"targets": ["198.18.0.2"], "seed": 7} and status == "complete"


def test_killed_run_is_incomplete_and_keeps_ports(store: Store) -> None:
    header = ScanRun(id="k1", started=T0, ports_spec="T:1-100", targets=("198.18.0.2",),
                     complete=False)
    w = RunWriter(store, options={"seed": 1})
    w.start(header)
    for n in (22, 23, 24):
        w.port("198.18.0.2", p(n, PortState.OPEN if n == 22 else PortState.CLOSED))
    w.close()  # flushes, but never finishes (as a killed process would leave it)
    with store.engine.begin() as conn:  # the writer's heartbeat went stale
        conn.execute(t.runs.update().values(heartbeat=datetime(2000, 1, 1, tzinfo=UTC)))
    (summary,) = store.runs()
    assert summary.status == "incomplete" and summary.resumable
    assert summary.open_ports == 1
    # the killed run's results join the current view
    assert [(r.port, r.state) for r in store.current()] == [(22, "open"), (23, "closed"),
                                                            (24, "closed")]
    run = store.load_run("k1")
    assert not run.complete
    (h,) = run.hosts
    assert h.status is HostStatus.UP and h.reason == "syn-ack"
    assert [x.port for x in h.ports] == [22, 23, 24]
    assert store.decided("k1") == {("198.18.0.2", "tcp", n) for n in (22, 23, 24)}
    store.mark_incomplete("k1")
    assert store.runs(status="incomplete")[0].id == "k1"


def test_current_view(store: Store) -> None:
    a = ScanRun(id="a", started=T0, ports_spec="T:1-100", targets=("198.18.0.2",), hosts=(
        Host("198.18.0.2", HostStatus.UP, "syn-ack",
             ports=(p(22), p(80), p(8080, PortState.CLOSED))),))
    b = replace(a, id="b", started=T0 + timedelta(days=1), hosts=(
        Host("198.18.0.2", HostStatus.UP, "syn-ack",
             ports=(p(22, svc=Service("ssh", "OpenSSH", "9.6", method="probe")),
                    p(80, PortState.CLOSED), p(8080))),))
    store.save_run(a)
    store.save_run(b)
    cur = {r.port: r for r in store.current()}
    assert {n: r.state for n, r in cur.items()} == {22: "open", 80: "closed", 8080: "open"}
    assert cur[22].first_seen == a.started and cur[22].state_since == a.started
    assert cur[22].last_seen == b.started and cur[22].run_id == "b"
    assert cur[22].service is not None and cur[22].service.version == "9.6"
    assert cur[8080].first_seen == a.started and cur[8080].state_since == b.started
    # an older import does not overwrite newer knowledge
    old = replace(a, id="old", started=T0 - timedelta(days=3), hosts=(
        Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=(p(80),)),))
    store.save_run(old)
    cur = {r.port: r for r in store.current()}
    assert cur[80].state == "closed" and cur[80].first_seen == old.started
    # queries
    opened = store.current(parse_query("state:open"))
    assert [r.port for r in opened] == [22, 8080]
    assert [r.port for r in store.current(parse_query("service:ssh product:openssh"))] == [22]
    assert [r.port for r in store.current(parse_query("port:1-100 -state:open"))] == [80]
    assert store.current(parse_query("host:198.18.1.0/24")) == []
    hist = store.history(parse_query("port:80"))
    assert [(r.run_id, r.state) for r in hist] == [("old", "open"), ("a", "open"),
                                                   ("b", "closed")]
    assert [r.run_id for r in store.history(parse_query("port:80 run:b"))] == ["b"]
    since = store.history(parse_query("since:2025-03-02 port:80"))
    assert [r.run_id for r in since] == ["b"]


def test_alerts_mutes_watches(store: Store) -> None:
    now = datetime.now(UTC)
    row = {"key": "new_open_port|198.18.0.2|8080/tcp|", "watch": "w", "trigger": "new_open_port",
           "address": "198.18.0.2", "protocol": "tcp", "port": 8080, "check_id": None,
           "status": "pending", "first_seen": now, "last_seen": now, "sent": None,
           "run_id": "b", "attempts": 0, "payload": {"text": "x", "delivered": []}}
    store.put_alert(row)
    store.put_alert({**row, "status": "sent", "sent": now, "attempts": 1})
    (got,) = store.alert_rows(watch="w")
    assert got["status"] == "sent" and got["attempts"] == 1
    assert abs((got["sent"] - now).total_seconds()) < 1
    assert store.alert_rows(status="pending") == []
    store.mute("check:telnet", reason="lab")
    store.mute("host:198.18.0.9", until=now - timedelta(minutes=1))  # expired
    assert [m["scope"] for m in store.mutes()] == ["check:telnet"]
    assert store.unmute("check:telnet") and not store.unmute("check:telnet")
    store.put_watch("w", options={"targets": ["198.18.0.2"]}, every_s=60)
    store.put_watch("w", options={"targets": ["198.18.0.2"]}, every_s=60, last_run_id="b",
                    last_started=now)
    state = store.watch_state("w")
    assert state is not None and state["last_run_id"] == "b"
    assert state["last_started"] is not None and state["last_started"].tzinfo is not None
    assert store.watch_state("other") is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "fresh.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_concurrent_first_opens_create_the_schema_once(fresh_url: str) -> None:
    import subprocess
    import sys

    code = ("import sys; from portscope.store import open_store; s = open_store(sys.argv[1]); "
            "print(s.revision()); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [(out.strip(), p.returncode) for (out, _), p in zip(results, procs, strict=True)] == \
        [(HEAD_REVISION, 0)] * 4, results


def test_in_memory_store_writes_in_process() -> None:
    """``--db :memory:`` (tests, one-off use): no writer process can reach it."""
    s = open_store(":memory:")
    try:
        assert s.in_memory
        header = ScanRun(id="m", started=T0, complete=False)
        w = RunWriter(s, interval=0.01)
        w.start(header)
        ports = tuple(p(n, PortState.CLOSED) for n in range(1, 50))
        for x in ports:
            w.port("198.18.0.2", x)
        w.finish(replace(header, complete=True, hosts=(
            Host("198.18.0.2", HostStatus.UP, "conn-refused", ports=ports),)))
        assert len(s.decided("m")) == 49 and len(s.current()) == 49
    finally:
        s.close()


def _run(rid: str, when: datetime, ports: tuple[PortResult, ...]) -> ScanRun:
    return ScanRun(id=rid, started=when, finished=when, ports_spec="T:1-10",
                   targets=("198.18.0.2",), hosts=(
                       Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=ports),))


def test_compact_ports_keep_the_current_view_and_history(store: Store) -> None:
    """Closed/filtered ports are stored as ranges (port_sets, current_ranges); what the
    store answers is the same as with one row per port."""
    day = timedelta(days=1)
    cl, fi = PortState.CLOSED, PortState.FILTERED
    a = _run("a", T0, tuple(p(n) if n == 5 else p(n, cl) for n in range(1, 11)))
    b = _run("b", T0 + day, tuple(p(n) if n == 7 else p(n, cl) for n in range(1, 11)))
    c = _run("c", T0 + 2 * day, tuple(p(n, fi if n <= 5 else cl) for n in range(1, 11)))
    old = _run("old", T0 - 3 * day, (p(3),))
    for run in (a, b, c, old):
        store.save_run(run)
        assert store.load_run(run.id) == run
    with store.engine.connect() as conn:  # only the open ports have rows of their own
        assert conn.execute(sa.select(sa.func.count()).select_from(t.ports)).scalar() == 3
    cur = {r.port: r for r in store.current()}
    assert sorted(cur) == list(range(1, 11))
    want = {1: ("filtered", T0, c.started), 2: ("filtered", T0, c.started),
            3: ("filtered", old.started, c.started), 4: ("filtered", T0, c.started),
            5: ("filtered", T0, c.started), 6: ("closed", T0, T0),
            7: ("closed", T0, c.started), 8: ("closed", T0, T0)}
    for n, (state, first, since) in want.items():
        r = cur[n]
        assert (r.state, r.first_seen, r.state_since, r.last_seen, r.run_id) == \
            (state, first, since, c.started, "c"), n
        assert r.service is None and r.reason == ("conn-refused" if state == "closed"
                                                   else "no-response")
    assert [r.port for r in store.current(parse_query("state:closed port:6-8,10"))] == \
        [6, 7, 8, 10]
    assert [r.port for r in store.current(parse_query("-state:closed -port:2"))] == \
        [1, 3, 4, 5]
    assert store.current(parse_query("service:ssh")) == []
    assert [r.port for r in store.current(parse_query("reason:conn-refused run:c since:2025-03-02"))
            ] == [6, 7, 8, 9, 10]
    assert store.current(parse_query("state:closed host:198.18.1.0/24")) == []
    assert len(store.current(parse_query("closed"), limit=2)) == 2
    hist = store.history(parse_query("port:7"))
    assert [(r.run_id, r.state) for r in hist] == [("a", "closed"), ("b", "open"),
                                                   ("c", "closed")]
    assert [r.run_id for r in store.history(parse_query("port:3"))] == ["old", "a", "b",
                                                                        "c"]
    assert len(store.history(parse_query("state:closed"))) == 9 + 9 + 5
    assert [r.ports_stored for r in store.runs()] == [10, 10, 10, 1]
    counts = store.counts()
    assert counts["ports"] == 31 and counts["current_ports"] == 10
    # deleting a run deletes its sets; the current view keeps what it learnt
    store.delete_run("a")
    assert store.history(parse_query("run:a")) == [] and len(store.current()) == 10


def test_compact_ports_meet_rows_of_their_own(store: Store) -> None:
    """A port the view knew from a range that opens gets a row of its own (keeping first
    seen); a port with a row of its own (an older store, an open port) that closes is
    updated in place, not duplicated."""
    day = timedelta(days=1)
    cl = PortState.CLOSED
    store.save_run(_run("a", T0, tuple(p(n, cl) for n in range(1, 11))))
    store.save_run(_run("b", T0 + day, tuple(p(n) if n == 4 else p(n, cl)
                                             for n in range(1, 11))))
    cur = {r.port: r for r in store.current()}
    assert len(cur) == 10
    assert (cur[4].state, cur[4].first_seen, cur[4].state_since) == ("open", T0, T0 + day)
    assert (cur[5].state, cur[5].first_seen, cur[5].state_since) == ("closed", T0, T0)
    with store.engine.begin() as conn:  # a closed row as a store before 0002 kept it
        conn.execute(t.current_ports.insert().values(
            address="198.18.0.2", protocol="tcp", port=20, state="closed", reason="reset",
            first_seen=T0 - day, state_since=T0 - day, last_seen=T0 - day, run_id="x"))
    store.save_run(_run("c", T0 + 2 * day, tuple(p(n, cl) for n in (*range(1, 11), 20))))
    cur = {r.port: r for r in store.current()}
    assert sorted(cur) == [*range(1, 11), 20]
    assert (cur[4].state, cur[4].first_seen, cur[4].state_since) == ("closed", T0,
                                                                     T0 + 2 * day)
    assert (cur[20].first_seen, cur[20].state_since, cur[20].last_seen) == (
        T0 - day, T0 - day, T0 + 2 * day)
    # within one run, a port's own row wins over a set that also has it
    header = ScanRun(id="w", started=T0 + 3 * day, complete=False)
    w = RunWriter(store, interval=0.01)
    w.start(header)
    for n in range(1, 11):
        w.port("198.18.0.2", p(n, cl))
    final = tuple(p(n, svc=Service("x", method="probe")) if n == 3 else p(n, cl)
                  for n in range(1, 11))
    w.finish(replace(header, complete=True, finished=T0 + 3 * day, hosts=(
        Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=final),)))
    assert store.load_run("w").hosts[0].ports == final
    assert store.runs()[0].ports_stored == 10 and len(store.decided("w")) == 10
    assert [r.state for r in store.history(parse_query("port:3 run:w"))] == ["open"]


def test_upgrade_from_0001_keeps_per_port_rows(fresh_url: str) -> None:
    """A store written before schema 0002 (every port a row of its own) is upgraded on
    open and reads as before; new runs fold into its per-port current view."""
    from alembic import command
    from alembic.config import Config

    from portscope.store import api

    s = open_store(fresh_url, upgrade=False)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(api.__file__).parent / "migrations"))
        with s.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        assert s.revision() == "0001"
        ports = tuple(p(n) if n == 22 else p(n, PortState.CLOSED) for n in range(1, 31))
        old = _run("old", T0, ports)
        with s.engine.begin() as conn:
            conn.execute(t.runs.insert().values(
                id="old", started=T0, finished=T0, complete=True, status="complete",
                source="scan", command="", scan_types=[], ports_spec="T:1-30",
                targets=["198.18.0.2"], vantage="", extra={}, stats={}, hosts_up=1,
                open_ports=1, folded=False))
            conn.execute(t.hosts.insert().values(run_id="old", address="198.18.0.2",
                                                 status="up", reason="syn-ack",
                                                 hostnames=[], doc={}))
            conn.execute(t.ports.insert(), [
                {"run_id": "old", "address": "198.18.0.2", "protocol": "tcp", "port": x.port,
                 "state": x.state.value, "reason": x.reason, "ttl": x.ttl, "seen": T0}
                for x in ports])
            # the per-port fold of 0001 (the same statement, still used for own rows)
            conn.exec_driver_sql(s._port_sql()[1], ("old",))
            conn.execute(t.runs.update().values(folded=True))
    finally:
        s.close()
    with open_store(fresh_url) as store:
        assert store.revision() == HEAD_REVISION
        assert store.load_run("old").hosts[0].ports == old.hosts[0].ports
        new = _run("new", T0 + timedelta(days=1), tuple(
            p(n) if n == 23 else p(n, PortState.CLOSED) for n in range(1, 31)))
        store.save_run(new)
        cur = {r.port: r for r in store.current()}
        assert len(cur) == 30 and [n for n, r in cur.items() if r.state == "open"] == [23]
        assert (cur[22].state, cur[22].state_since, cur[22].first_seen) == (
            "closed", new.started, T0)
        assert (cur[5].state_since, cur[5].last_seen, cur[5].run_id) == (T0, new.started,
                                                                         "new")
        assert [r.ports_stored for r in store.runs()] == [30, 30]
