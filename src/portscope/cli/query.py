"""``portscope query``: search the current view (or the whole history) of the store."""

from __future__ import annotations

import json
import sys

import click

from portscope.cli._store import db_option, open_db
from portscope.report._common import printable
from portscope.store import PortRow, parse_query


def _svc(r: PortRow) -> str:
    s = r.service
    if s is None:
        return ""
    return " ".join(x for x in (s.name, s.product, s.version) if x)


@click.command("query", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("terms", nargs=-1)
@db_option
@click.option("--history", is_flag=True,
              help="search every stored observation, not just the latest state of each port")
@click.option("-n", "--limit", type=int, default=0, help="at most N rows (0: all)")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one port a line")
def command(terms: tuple[str, ...], db_url: str | None, history: bool, limit: int,
            as_json: bool) -> None:
    """Find ports in the store.

    \b
    By default the current view: the latest known state of each host/protocol/port, with
    when it was first seen, since when it has its state, and when it was last seen.
    \b
    Examples (docs/query.md has the whole language):
      portscope query port:445 state:open
      portscope query 'service:ssh,http* host:198.18.0.0/24 since:7d'
      portscope query --history port:22 host:198.18.0.2
    """
    q = parse_query(" ".join(terms))
    with open_db({"db_url": db_url}) as store:
        rows = store.history(q, limit=limit or None) if history else \
            store.current(q, limit=limit or None)
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r.to_dict()) + "\n")
        return
    if not rows:
        click.echo("no matching ports", err=True)
        return
    if history:
        head = ("SEEN (UTC)", "HOST", "PORT", "STATE", "REASON", "SERVICE", "RUN")
        table = [head] + [(r.last_seen.strftime("%Y-%m-%d %H:%M:%S"), r.address,
                           f"{r.port}/{r.protocol}", r.state, r.reason,
                           printable(_svc(r)), r.run_id) for r in rows]
    else:
        head = ("HOST", "PORT", "STATE", "SERVICE", "FIRST SEEN", "STATE SINCE", "LAST SEEN")
        table = [head] + [(r.address, f"{r.port}/{r.protocol}", r.state, printable(_svc(r)),
                           r.first_seen.strftime("%Y-%m-%d %H:%M"),
                           r.state_since.strftime("%Y-%m-%d %H:%M") if r.state_since else "",
                           r.last_seen.strftime("%Y-%m-%d %H:%M")) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
