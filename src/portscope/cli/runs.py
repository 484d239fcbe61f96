"""``portscope runs``: the history of runs in the store, newest first."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from portscope.cli._store import db_option, open_db
from portscope.report._common import printable


def _when(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"


@click.command("runs", context_settings={"help_option_names": ["-h", "--help"]})
@db_option
@click.option("-n", "--limit", type=int, default=50, show_default=True,
              help="show at most N runs (0: all)")
@click.option("--watch", "watch", metavar="NAME", help="only the runs of this watch")
@click.option("--status", type=click.Choice(["running", "complete", "incomplete"]))
@click.option("--json", "as_json", is_flag=True, help="JSON (a list of run summaries)")
def command(db_url: str | None, limit: int, watch: str | None, status: str | None,
            as_json: bool) -> None:
    """List the runs in the store (scans, imports, watch runs), newest first.

    Runs are named by id, a unique prefix of one, 'latest' or 'latest~N'.
    """
    with open_db({"db_url": db_url}) as store:
        runs = store.runs(limit=limit or None, watch=watch, status=status)
    if as_json:
        sys.stdout.write(json.dumps([r.to_dict() for r in runs], indent=2) + "\n")
        return
    if not runs:
        click.echo("no runs in the store yet ('portscope scan TARGETS' adds one)")
        return
    rows = [("RUN", "STARTED (UTC)", "STATUS", "HOSTS UP", "OPEN", "PORTS", "SOURCE",
             "TARGETS")]
    for r in runs:
        status_text = r.status + (" (resumable)" if r.resumable else "")
        rows.append((r.id, _when(r.started), status_text, str(r.hosts_up), str(r.open_ports),
                     str(r.ports_stored), r.source + (f" {r.watch}" if r.watch else ""),
                     printable(" ".join(r.targets))[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) +
                   "  " + row[-1])
