"""``portscope diff A B``: what changed between two runs (stored runs or files)."""

from __future__ import annotations

import json
import os
import sys

import click

from portscope.cli._store import db_option
from portscope.errors import EXIT_DIFFERENT, EXIT_ERROR, EXIT_OK, PortscopeError
from portscope.model import ScanRun
from portscope.store import Store


def _load(ref: str, kw: dict[str, str | None], stores: list[Store]) -> ScanRun:
    """A file (JSON, JSON Lines, nmap XML, masscan) if *ref* names one, else a run."""
    if ref == "-" or os.path.exists(ref):
        from portscope.importers import load_file

        return load_file(ref)[0]
    if not stores:
        from portscope.store import open_store

        stores.append(open_store(kw.get("db_url")))
    return stores[0].load_run(ref)


@click.command("diff", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("a")
@click.argument("b")
@db_option
@click.option("--json", "as_json", is_flag=True, help="the changes as one JSON document")
def command(a: str, b: str, db_url: str | None, as_json: bool) -> None:
    """Show what changed from A to B: hosts up/down, ports opened/closed/changed state,
    service versions, certificates, findings new/resolved.

    \b
    A and B are stored runs (id, unique prefix, latest, latest~1 ...) or files: portscope
    JSON or JSON Lines, nmap XML (-oX), masscan JSON/list. Only ports inside both runs'
    scope count: a port missing from a run that did not scan it is not "closed".
    \b
    Exit code (like ndiff): 0 no differences, 1 differences, 2 error.
      portscope diff latest~1 latest
      portscope diff before.xml after.json --json
    """
    from portscope.diff import diff_runs, render_text
    from portscope.report._common import printable

    stores: list[Store] = []
    try:
        try:
            run_a = _load(a, {"db_url": db_url}, stores)
            run_b = _load(b, {"db_url": db_url}, stores)
        finally:
            for s in stores:
                s.close()
        result = diff_runs(run_a, run_b)
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        else:
            sys.stdout.write(render_text(result, printable))
        sys.stdout.flush()
    except PortscopeError as exc:
        click.echo(f"portscope: error: {exc.message}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_DIFFERENT if result.different else EXIT_OK)
