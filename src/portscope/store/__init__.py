"""The result store: every run, its hosts, ports and findings, the merged current view,
and the alert state of ``portscope watch``, behind one API (:class:`Store`) over
SQLAlchemy 2. SQLite is the embedded default (``$XDG_DATA_HOME/portscope/
portscope.sqlite3``); PostgreSQL (psycopg 3) by URL. Alembic migrations ship in the
package and are applied when a store is opened (``portscope db upgrade`` does it
explicitly)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portscope.store.api import (
        DB_ENV,
        HEAD_REVISION,
        NoSuchRun,
        PortRow,
        RunSummary,
        Store,
        StoreError,
        default_path,
        display_url,
        open_store,
        resolve_url,
    )
    from portscope.store.query import Query, parse_duration, parse_query
    from portscope.store.writer import RunWriter

# Imported on first use (PEP 562): the writer process of a SQLite store needs neither
# SQLAlchemy nor the rest of the package.
_WHERE = {
    **dict.fromkeys(("DB_ENV", "HEAD_REVISION", "NoSuchRun", "PortRow", "RunSummary",
                     "Store", "StoreError", "default_path", "display_url", "open_store",
                     "resolve_url"), "api"),
    **dict.fromkeys(("Query", "parse_duration", "parse_query"), "query"),
    "RunWriter": "writer",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'portscope.store' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"portscope.store.{module}"), name)
    globals()[name] = value
    return value

__all__ = [
    "DB_ENV",
    "HEAD_REVISION",
    "NoSuchRun",
    "PortRow",
    "Query",
    "RunSummary",
    "RunWriter",
    "Store",
    "StoreError",
    "default_path",
    "display_url",
    "open_store",
    "parse_duration",
    "parse_query",
    "resolve_url",
]
