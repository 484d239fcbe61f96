"""``--db URL`` and opening the store, shared by the subcommands that use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from portscope.store import Store

# = portscope.store.DB_ENV; not imported from there: the store (SQLAlchemy) takes ~0.2 s to
# import, which a scan with --no-store should not pay
DB_ENV = "PORTSCOPE_DB"

F = TypeVar("F", bound=Callable[..., Any])

DB_HELP = (f"result store: a SQLite file path, sqlite:///PATH or postgresql://USER@HOST/DB "
           f"(default: ${DB_ENV}, else ~/.local/share/portscope/portscope.sqlite3)")


def db_option(func: F) -> F:
    return click.option("--db", "db_url", metavar="URL", default=None, help=DB_HELP)(func)


def open_db(kw: dict[str, Any]) -> Store:
    """The store named by ``--db`` (or the environment, or the default file)."""
    from portscope.store import open_store

    return open_store(kw.get("db_url"))
