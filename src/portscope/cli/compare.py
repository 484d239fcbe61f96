"""``portscope compare``: the host's own view of its listening sockets against a scan of
the host from another vantage point (netstat versus the scanner)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from portscope.cli.local import CONTEXT, collector_option, take_inventory, write_json, write_text
from portscope.cli.scan import scan_options
from portscope.errors import EXIT_DIFFERENT, DataError, UsageError, reading
from portscope.model import Exposure, Inventory, ScanRun


def _read_text(path: str) -> str:
    with reading(path):
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()


def read_inventory(path: str) -> Inventory:
    """A saved inventory: portscope's JSON, or the text of netstat -an / ss -ltnup."""
    from portscope.local.listing import parse_listing, with_services
    from portscope.targets import service_db

    text = _read_text(path)
    try:
        if text.lstrip().startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError as exc:
                raise DataError(f"not valid JSON ({exc})") from None
            return Inventory.from_dict(doc)
        return with_services(parse_listing(text, source=path), service_db().name)
    except DataError as exc:
        raise DataError(f"{path}: {exc.message}") from None


def read_scan(path: str) -> ScanRun:
    from portscope.local.scanfile import parse_scan

    text = _read_text(path)
    try:
        return parse_scan(text, path)
    except DataError as exc:
        msg = exc.message if exc.message.startswith(path) else f"{path}: {exc.message}"
        raise DataError(msg) from None


def _fail_on(text: str | None) -> set[Exposure]:
    if not text:
        return set()
    out = set()
    for part in text.split(","):
        part = part.strip()
        try:
            out.add(Exposure(part))
        except ValueError:
            known = ", ".join(e.value for e in Exposure)
            raise UsageError(f"--fail-on: {part!r} is not a class ({known})") from None
    return out


@click.command("compare", context_settings=CONTEXT)
@click.option("--local", "local_file", metavar="FILE",
              help="a saved inventory: 'portscope local --json' of this or another host, or "
                   "the output of 'netstat -an' or 'ss -ltnup' there")
@click.option("--netns", metavar="NAME",
              help="take the inventory in network namespace NAME now (needs root)")
@collector_option
@click.option("--scan", "scan_file", metavar="FILE",
              help="a saved scan of the host: portscope JSON or nmap XML (-oX)")
@click.option("--target", "extra_targets", multiple=True, metavar="ADDR",
              help="scan ADDR now (same as giving it as TARGETS)")
@click.option("--address", "addresses", multiple=True, metavar="ADDR",
              help="the scanned address(es) that are this host (default: the host's own; "
                   "needed behind NAT when the scan has several hosts)")
@click.option("--lang", type=click.Choice(["en", "ja"]), default="en", show_default=True,
              help="language of the advice")
@click.option("--fail-on", metavar="CLASSES",
              help="exit 1 if any port falls into one of these classes "
                   "(e.g. unexpected,exposed)")
@click.option("--json", "-oJ", "json_out", metavar="FILE", help="write the comparison as JSON")
@click.option("-oN", "normal_out", metavar="FILE", help="write the text report to FILE")
@click.option("--save-scan", metavar="FILE", help="also write the scan run now as JSON")
@click.option("--no-progress", is_flag=True, help="no progress bar, even on a terminal")
@scan_options
def command(**kw: Any) -> None:
    """Compare what this host says it listens on with what a scan from elsewhere reaches,
    and classify every port: exposed, shielded, local-only, unexpected, closed-but-listed
    (plus undetermined and not-scanned), with advice and, for reachable ports, a risk level.

    \b
    The local view: taken now (default), --netns NAME, or --local FILE.
    The outside view: --scan FILE, or a scan run now of TARGETS (--target ADDR) with the
    scan options below (-p, -sT/-sU, -T ...).
    \b
    Examples:
      sudo portscope compare --netns web1 198.18.0.2 -p-
      portscope compare --local web1.json --scan web1-from-outside.xml --lang ja
      portscope compare --local inv.json --scan scan.json --fail-on unexpected,exposed
    """
    from portscope.local.compare import compare
    from portscope.local.render import render_comparison_rich, render_comparison_text
    from portscope.local.risk import default_risk_source

    fail_on = _fail_on(kw.get("fail_on"))
    targets = (*kw["targets"], *kw["extra_targets"])
    kw["targets"] = targets
    if kw["local_file"] and kw["netns"]:
        raise UsageError("give either --local FILE or --netns NAME, not both")
    if kw["scan_file"] and (targets or kw.get("input_list")):
        raise UsageError("give either --scan FILE or targets to scan now, not both")
    if not kw["scan_file"] and not (targets or kw.get("input_list")):
        raise UsageError("no outside view: give --scan FILE, or targets to scan now "
                         "(e.g. 'portscope compare 198.18.0.2')")

    inventory = (read_inventory(kw["local_file"]) if kw["local_file"]
                 else take_inventory(kw["netns"], kw["collector"]))
    run = read_scan(kw["scan_file"]) if kw["scan_file"] else _scan_now(kw)
    comparison = compare(inventory, run, addresses=kw["addresses"] or None,
                         risk=default_risk_source(), lang=kw["lang"])

    if kw["json_out"]:
        write_json(kw["json_out"], comparison.to_dict())
    if kw["normal_out"]:
        write_text(kw["normal_out"], render_comparison_text(comparison))
    if "-" not in (kw["json_out"], kw["normal_out"]):
        if sys.stdout.isatty():
            from rich.console import Console

            Console().print(render_comparison_rich(comparison))
        else:
            sys.stdout.write(render_comparison_text(comparison))
    if fail_on and any(e.exposure in fail_on for e in comparison.entries):
        sys.exit(EXIT_DIFFERENT)


def _scan_now(kw: dict[str, Any]) -> ScanRun:
    from portscope.cli.common import Outputs, stderr_is_tty
    from portscope.cli.scan import execute, prepare, summary_line

    prepared = prepare(kw)
    requested = [("json", kw["save_scan"])] if kw.get("save_scan") else []
    outputs = Outputs(requested)
    try:
        if stderr_is_tty():
            click.echo(summary_line(prepared), err=True)
        run = execute(prepared, outputs, progress=stderr_is_tty() and not kw["no_progress"])
    finally:
        outputs.close()
    if not run.complete:
        click.echo("portscope: the scan was interrupted: comparing what it found", err=True)
    return run
