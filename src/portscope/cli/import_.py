"""``portscope import FILE...``: put other scanners' results (and portscope files) into
the store."""

from __future__ import annotations

import click

from portscope.cli._store import db_option, open_db
from portscope.importers import IMPORTERS, load_file


@click.command("import", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@db_option
@click.option("--format", "fmt", type=click.Choice(sorted(IMPORTERS)),
              help="the input format (default: recognised from the contents)")
@click.option("--replace", is_flag=True, help="replace a run imported before from the same file")
def command(files: tuple[str, ...], db_url: str | None, fmt: str | None, replace: bool) -> None:
    """Import result files into the store: nmap XML (-oX; also masscan's and portscope's),
    masscan JSON (-oJ/-oD) and list (-oL), portscope JSON and JSON Lines.

    Files are untrusted input: XML is parsed without entities or external references,
    and a corrupt file is refused with a one-line error (exit 65). The same file always
    gets the same run id, so importing it twice is noticed (--replace).
    """
    from portscope.store.api import StoreError

    with open_db({"db_url": db_url}) as store:
        for path in files:
            run, name = load_file(path, fmt)
            try:
                store.save_run(run, source=f"import:{name}", replace_existing=replace)
            except StoreError as exc:
                raise StoreError(f"{path}: {exc.message} (--replace re-imports it)") from None
            nports = sum(len(h.ports) for h in run.hosts)
            nopen = sum(len(h.open_ports) for h in run.hosts)
            click.echo(f"{path}: imported as run {run.id} ({name}: {len(run.hosts)} host(s), "
                       f"{nports} port(s), {nopen} open)")
