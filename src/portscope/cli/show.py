"""``portscope show RUN``: one stored run, as ``portscope scan`` showed it."""

from __future__ import annotations

import click

from portscope.cli._store import db_option, open_db


@click.command("show", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", default="latest")
@db_option
@click.option("--open", "only_open", is_flag=True, help="show only open (or possibly open) ports")
def command(run: str, db_url: str | None, only_open: bool) -> None:
    """Show the stored run RUN (an id, a unique prefix, 'latest', 'latest~1' ...).

    Other formats: 'portscope export RUN --format json|jsonl|xml|normal'.
    """
    from portscope.cli.scan import show

    with open_db({"db_url": db_url}) as store:
        result = store.load_run(run)
        status = next((r.status for r in store.runs(limit=None) if r.id == result.id), "")
    click.echo(f"run {result.id}: {status}", err=True)
    show(result, only_open=only_open)
