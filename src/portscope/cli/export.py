"""``portscope export RUN``: a stored run in any output format."""

from __future__ import annotations

import click

from portscope.cli._store import db_option, open_db
from portscope.report import FORMATS, open_output


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", default="latest")
@db_option
@click.option("-f", "--format", "fmt", type=click.Choice(sorted(FORMATS)), default="json",
              show_default=True, help="output format")
@click.option("-o", "--output", "path", default="-", metavar="FILE", show_default=True,
              help="where to write (- is standard output)")
def command(run: str, db_url: str | None, fmt: str, path: str) -> None:
    """Write the stored run RUN (id, prefix, latest, latest~1 ...) in any output format
    (the --format choices): json is the result contract, xml is nmap's (ndiff reads it).
    """
    with open_db({"db_url": db_url}) as store:
        result = store.load_run(run)
    with open_output(fmt, path) as out:
        out.start(result)
        for host in result.hosts:
            out.host(host)
        out.finish(result)
