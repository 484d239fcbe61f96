"""Throw-away PostgreSQL databases for tests.

The server is the machine's own (127.0.0.1:5432, trust auth, database ``test``); override
with ``PORTSCOPE_TEST_POSTGRES_URL`` (an admin URL to a database that exists). Each test
gets a fresh database ``pstest_<pid>_<n>``, dropped afterwards; :func:`cleanup_stale` drops
those of dead processes. Talks to the server with psycopg (3) when installed, else ``psql``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from portscope.errors import ServiceUnavailable

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_PREFIX = "pstest"
_DB_RE = re.compile(rf"^{DB_PREFIX}_(\d+)_(\d+)$")
_counter = itertools.count(1)
_counter_lock = threading.Lock()


def admin_url() -> str:
    return os.environ.get("PORTSCOPE_TEST_POSTGRES_URL") or DEFAULT_ADMIN_URL


def with_database(url: str, name: str) -> str:
    """*url* pointing at database *name* instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _have_psycopg() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def execute(url: str, sql: str) -> list[tuple[str, ...]]:
    """Run *sql* (autocommit) and return the rows, as text."""
    if _have_psycopg():
        import psycopg

        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                cur = conn.execute(sql)
                rows = cur.fetchall() if cur.description else []
                return [tuple("" if v is None else str(v) for v in row) for row in rows]
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"PostgreSQL at {url}: {exc}") from None
    psql = shutil.which("psql")
    if psql is None:
        raise ServiceUnavailable("no PostgreSQL client: install psycopg or psql")
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    proc = subprocess.run(
        [psql, url, "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-q", "-F", "\t", "-c", sql],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise ServiceUnavailable(f"PostgreSQL at {url}: {proc.stderr.strip()}")
    return [tuple(line.split("\t")) for line in proc.stdout.splitlines() if line]


def unavailable_reason(url: str | None = None) -> str | None:
    """Why no test database can be made, or None."""
    url = url or admin_url()
    host, port = _host_port(url)
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        return f"PostgreSQL not reachable at {host}:{port} ({exc.strerror or exc})"
    if not _have_psycopg() and shutil.which("psql") is None:
        return "no PostgreSQL client: install psycopg (pip) or psql (Debian postgresql-client)"
    try:
        execute(url, "SELECT 1")
    except ServiceUnavailable as exc:
        return str(exc)
    return None


def create_database(url: str | None = None) -> str:
    """Create a fresh empty database; return its URL."""
    url = url or admin_url()
    with _counter_lock:
        n = next(_counter)
    name = f"{DB_PREFIX}_{os.getpid()}_{n}"
    execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    execute(url, f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def drop_database(db_url: str, url: str | None = None) -> None:
    name = urlsplit(db_url).path.lstrip("/")
    if not _DB_RE.match(name):
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    execute(url or admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_database(url: str | None = None) -> Iterator[str]:
    db_url = create_database(url)
    try:
        yield db_url
    finally:
        drop_database(db_url, url)


def cleanup_stale(url: str | None = None) -> list[str]:
    """Drop test databases whose creating process is gone."""
    url = url or admin_url()
    rows = execute(url, f"SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}\\_%'")
    dropped: list[str] = []
    for (name,) in rows:
        m = _DB_RE.match(name)
        if not m or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        with contextlib.suppress(ServiceUnavailable):
            execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            dropped.append(name)
    return dropped
