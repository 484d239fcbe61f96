"""The ``postgres_url`` fixture: a fresh database per test, dropped afterwards.

Marked ``postgres`` (needs the machine's PostgreSQL at 127.0.0.1:5432): skipped without it,
a failure under CI=true.
"""

from __future__ import annotations

import pytest

from portscope.testing import postgres as pglib

pytestmark = pytest.mark.postgres


def _exists(name: str) -> bool:
    rows = pglib.execute(pglib.admin_url(), f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    return bool(rows)


def test_fresh_database_per_test(postgres_url: str) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    assert name.startswith("pstest_")
    assert pglib.execute(
        postgres_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    )[0] == ("0",)
    pglib.execute(postgres_url, "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1)")
    assert pglib.execute(postgres_url, "SELECT sum(x) FROM t") == [("42",)]


def test_temporary_database_is_dropped(postgres_url: str) -> None:
    with pglib.temporary_database() as url:
        name = url.rsplit("/", 1)[1]
        assert _exists(name)
    assert not _exists(name)
