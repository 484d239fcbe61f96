"""The query language of ``portscope query`` (pure parsing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portscope.errors import UsageError
from portscope.store.query import parse_duration, parse_query, parse_when

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_terms_and_values() -> None:
    q = parse_query("port:445,8000-8100 state:open -service:http* proto:tcp", now=NOW)
    assert [(t.key, t.values, t.negate) for t in q.terms] == [
        ("port", ("445", "8000-8100"), False),
        ("state", ("open",), False),
        ("service", ("http*",), True),
        ("proto", ("tcp",), False),
    ]


def test_bare_words() -> None:
    q = parse_query("open 22 ssh 198.18.0.0/24 udp", now=NOW)
    assert [(t.key, t.values) for t in q.terms] == [
        ("state", ("open",)), ("port", ("22",)), ("service", ("ssh",)),
        ("host", ("198.18.0.0/24",)), ("proto", ("udp",))]


def test_aliases() -> None:
    q = parse_query("ip:198.18.0.1 protocol:udp svc:ssh", now=NOW)
    assert [t.key for t in q.terms] == ["host", "proto", "service"]


def test_time_terms() -> None:
    q = parse_query("since:7d before:2025-05-31", now=NOW)
    assert q.since == NOW - timedelta(days=7)
    assert q.before == datetime(2025, 5, 31, tzinfo=UTC)
    assert q.terms == []


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)), ("2d", timedelta(days=2)), ("1w", timedelta(days=7)),
    ("1.5h", timedelta(minutes=90))])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_when_iso_with_zone() -> None:
    assert parse_when("2025-01-01T10:00+02:00", NOW) == datetime(2025, 1, 1, 8, tzinfo=UTC)


def test_hosts() -> None:
    q = parse_query("host:198.18.0.0/30,2001:db8::1 -host:198.18.0.2", now=NOW)
    assert q.host_ok("198.18.0.1")
    assert not q.host_ok("198.18.0.2")  # negated
    assert q.host_ok("2001:db8::1")
    assert not q.host_ok("198.18.0.9")
    r = parse_query("host:198.18.0.5-198.18.0.7", now=NOW)
    assert r.host_ok("198.18.0.6") and not r.host_ok("198.18.0.8")
    assert not r.host_ok("2001:db8::6")


@pytest.mark.parametrize("bad", ["state:opn", "port:70000", "port:x", "proto:sctp",
                                 "colour:red", "since:yesterday", "host:198.18.0.0/99",
                                 "port:", "-since:7d", "host:1.2.3.4-::1"])
def test_errors_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_query(bad, now=NOW)
