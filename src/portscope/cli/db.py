"""``portscope db``: the store itself (where it is, its schema revision, upgrades)."""

from __future__ import annotations

import click

from portscope.cli._store import db_option


@click.group("db", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """The result store: SQLite by default, PostgreSQL by URL (--db, $PORTSCOPE_DB)."""


@command.command("upgrade")
@db_option
def upgrade(db_url: str | None) -> None:
    """Create the store or bring its schema up to date (also done on every open)."""
    from portscope.store import open_store

    with open_store(db_url, upgrade=False) as store:
        before, after = store.upgrade()
        if before == after:
            click.echo(f"{store.label}: schema {after}, up to date")
        else:
            click.echo(f"{store.label}: schema {before or 'none'} -> {after}")


@command.command("info")
@db_option
def info(db_url: str | None) -> None:
    """Where the store is, its schema revision and what it holds."""
    from portscope.store import open_store

    with open_store(db_url) as store:
        counts = store.counts()
        click.echo(f"store:    {store.label}")
        click.echo(f"schema:   {store.revision()}")
        click.echo(f"runs:     {counts['runs']}")
        click.echo(f"ports:    {counts['ports']} observations, {counts['current_ports']} "
                   f"in the current view")
        click.echo(f"findings: {counts['findings']}")
        click.echo(f"alerts:   {counts['alerts']} ({counts['mutes']} mute(s), "
                   f"{counts['watches']} watch(es))")
