"""``portscope audit``: scan, identify services, run the security checks (and the SMTP
open-relay test), write the security-check report; ``--fail-on`` for CI."""

from __future__ import annotations

import importlib
import ipaddress
import itertools
import json
import socket
import sys
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import click

from portscope.checks import run_checks
from portscope.checks.config import (
    AuditConfig,
    RelayOptions,
    load_config,
    parse_lang,
    validate_relay,
)
from portscope.cli.common import Outputs, output_options, requested_outputs, stderr_is_tty
from portscope.cli.local import collector_option
from portscope.cli.scan import LARGE_SCAN, execute, prepare, scan_options, show, summary_line
from portscope.errors import (
    EXIT_DIFFERENT,
    EXIT_INTERRUPTED,
    DataError,
    UsageError,
    reading,
)
from portscope.model import ScanRun, Severity, expand_host
from portscope.report import FORMATS, open_output
from portscope.report.base import Output

SEVERITY_CHOICES = [s.value for s in Severity]

# file name ending -> report format (longest first)
EXTENSIONS = (
    (".sarif.json", "sarif"), (".dojo.json", "defectdojo"), (".sarif", "sarif"),
    (".html", "html"), (".htm", "html"), (".md", "markdown"), (".markdown", "markdown"),
    (".jsonl", "jsonl"), (".json", "json"), (".csv", "csv"), (".xml", "xml"),
    (".txt", "normal"), (".nmap", "normal"),
)


def report_format(spec: str) -> tuple[str, str]:
    """``FILE`` or ``FORMAT:FILE`` -> (format, path)."""
    fmt, sep, path = spec.partition(":")
    if sep and fmt in FORMATS and path:
        return fmt, path
    lower = spec.lower()
    for ext, name in EXTENSIONS:
        if lower.endswith(ext):
            return name, spec
    known = ", ".join(sorted({e for e, _ in EXTENSIONS}))
    raise UsageError(f"--report {spec}: cannot tell the format from the name (use one of "
                     f"{known}, or FORMAT:FILE with FORMAT one of {', '.join(sorted(FORMATS))})")


def read_run(path: str) -> ScanRun:
    """A result document written by ``portscope scan --json``."""
    with reading(path):
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    run = ScanRun.from_dict(doc)
    return run.with_hosts(expand_host(h) for h in run.hosts)


def detect_services(run: ScanRun, *, progress: bool) -> tuple[ScanRun, bool]:
    """Service detection (issue 4) when this build has it; (run, whether it ran)."""
    try:
        services = importlib.import_module("portscope.engine.services")
    except ImportError:
        return run, False
    options = services.ServiceOptions()
    detected = services.detect(run, options)
    assert isinstance(detected, ScanRun)
    return detected, True


def source_address(destination: str) -> str | None:
    """The local address the kernel would use to reach *destination* (a UDP "connect"
    sends nothing)."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((destination, 9))
            addr = s.getsockname()[0]
            return str(addr)
    except OSError:
        return None


def with_sources(run: ScanRun) -> ScanRun:
    hosts = []
    for h in run.hosts:
        src = source_address(h.address)
        hosts.append(replace(h, extra={**h.extra, "scanned_from": src}) if src else h)
    return replace(run, hosts=tuple(hosts))


def build_config(kw: dict[str, Any]) -> AuditConfig:
    config = load_config(kw.get("config_file"))
    if kw.get("lang"):
        config = replace(config, lang=parse_lang(kw["lang"], "--lang"))
    if kw.get("policy"):
        from portscope.checks.policy import load_policy

        config = replace(config, policy=load_policy(kw["policy"]))
    relay: RelayOptions = config.relay
    relay = replace(
        relay,
        enabled=relay.enabled and not kw.get("no_relay_test"),
        domain=kw.get("relay_domain") or relay.domain,
        confirm=bool(kw.get("relay_confirm")) or relay.confirm,
        mailbox=kw.get("relay_mailbox") or relay.mailbox,
    )
    validate_relay(relay, "--relay-confirm" if kw.get("relay_confirm") else "relay")
    if kw.get("source_address"):
        config = replace(config, source=kw["source_address"])
    return replace(config, relay=relay)


def fail_level(kw: dict[str, Any], config: AuditConfig) -> Severity | None:
    if kw.get("fail_on"):
        return Severity(kw["fail_on"])
    return config.fail_on


def _open_reports(specs: tuple[str, ...]) -> list[Output]:
    outs: list[Output] = []
    try:
        for spec in specs:
            fmt, path = report_format(spec)
            outs.append(open_output(fmt, path))
    except BaseException:
        for o in outs:
            o.close()
        raise
    return outs


def _write(outputs: Outputs, reports: list[Output], run: ScanRun) -> None:
    sinks: list[Any] = [outputs, *reports]
    for o in sinks:
        o.start(run)
    for h in run.hosts:
        for p in h.ports:
            for o in sinks:
                o.port(h.address, p)
        for o in sinks:
            o.host(h)
    for o in sinks:
        o.finish(run)


def inventory_sources(kw: dict[str, Any], config: AuditConfig) -> list[Any]:
    """The local views asked for (``--local``, ``--netns``, ``--inventory``), read or
    taken now (before the scan, so both views show the same moment as closely as can be)."""
    from portscope.cli.compare import read_inventory
    from portscope.local.compare import SourcedInventory

    specs = [split_inventory_spec(s) for s in kw.get("inventories") or ()]
    now = bool(kw.get("local_now") or kw.get("netns"))
    addresses = tuple(kw.get("addresses") or ())
    if addresses and len(specs) + int(now) != 1:
        raise UsageError("--address names the scanned address(es) of the ONE local view: "
                         "with several, use --inventory ADDR=FILE for each"
                         if specs else "--address needs --local, --netns NAME or "
                         "--inventory FILE")
    if any(a for a, _ in specs) and addresses:
        raise UsageError("give the address either with --address or as --inventory "
                         "ADDR=FILE, not both")
    sources = []
    if now:
        from portscope.cli.local import take_inventory

        netns = kw.get("netns")
        label = f"--netns {netns}" if netns else "--local (this machine)"
        sources.append(SourcedInventory(label, take_inventory(netns, kw["collector"]),
                                        addresses, exact=True))
    for addr, path in specs:
        sources.append(SourcedInventory(f"--inventory {path}", read_inventory(path),
                                        (addr,) if addr else addresses))
    return sources


def check_sources_reachable(sources: list[Any], targets: Iterable[str], *,
                            limit: int = 1 << 16) -> None:
    """Before the scan: an inventory taken now (``--local``, ``--netns``) without
    ``--address`` describes only targets that are its own addresses; refuse at once when
    none is (instead of after a long scan). Target sets larger than *limit* are left to
    the check after the scan."""
    from portscope.model import unmap

    exact = [s for s in sources if s.exact and not s.addresses]
    if not exact:
        return
    addrs = list(itertools.islice(targets, limit + 1))
    if len(addrs) > limit:
        return
    for src in exact:
        if not any(src.inventory.is_local_address(unmap(a)) for a in addrs):
            shown = ", ".join(addrs[:6]) + (" ..." if len(addrs) > 6 else "")
            raise UsageError(
                f"{src.label}: none of the targets ({shown}) is an address of "
                f"{src.inventory.hostname or 'its host'}; scan one of its addresses, or "
                "name the scanned address that reaches it (NAT) with --address ADDR")


def split_inventory_spec(spec: str) -> tuple[str | None, str]:
    """``FILE`` or ``ADDR=FILE`` (ADDR an IPv4 or IPv6 address) -> (ADDR or None, FILE)."""
    head, sep, rest = spec.partition("=")
    if sep and rest:
        try:
            ipaddress.ip_address(head.strip("[]"))
        except ValueError:
            return None, spec
        return head.strip("[]"), rest
    return None, spec


def with_comparison(run: ScanRun, sources: list[Any], config: AuditConfig) -> ScanRun:
    from portscope.checks.kb import load_kb
    from portscope.local.compare import merge_into_run
    from portscope.local.risk import KBRiskSource

    risk = KBRiskSource(load_kb(extra=config.kb_files, overrides=config.services))
    return merge_into_run(run, sources, risk=risk, lang=config.lang)


def comparison_summary(run: ScanRun) -> list[str]:
    """One line per compared host: ``198.18.0.2 inside vs outside: 4 exposed, ...``."""
    audit = run.extra.get("audit")
    items = audit.get("comparisons") if isinstance(audit, dict) else None
    lines = []
    for item in items or ():
        c = {k: v for k, v in (item.get("counts") or {}).items() if v}
        parts = ", ".join(f"{n} {k}" for k, n in c.items()) or "nothing to compare"
        lines.append(f"portscope audit: {item.get('address')} inside vs outside "
                     f"({item.get('source')}): {parts}")
    return lines


def summary(run: ScanRun) -> str:
    from portscope.report.audit_view import counts

    c = counts(f for _, f in run.findings)
    parts = [f"{n} {s}" for s, n in c.items() if n]
    return "portscope audit: " + (", ".join(parts) if parts else "no findings")


@click.command("audit", context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@scan_options
@output_options
@collector_option
@click.option("--report", "reports", multiple=True, metavar="[FORMAT:]FILE",
              help="write the report: .html .md .json .csv .sarif .dojo.json (DefectDojo) "
                   "or FORMAT:FILE; may be repeated")
@click.option("--lang", type=click.Choice(["en", "ja"]),
              help="language of findings and reports (default: config, else en)")
@click.option("--policy", metavar="FILE", help="YAML policy of what may be open where")
@click.option("--fail-on", type=click.Choice(SEVERITY_CHOICES), metavar="LEVEL",
              help="exit 1 when a finding is at or above LEVEL (critical|high|medium|low|info)")
@click.option("--config", "config_file", metavar="FILE",
              help="audit configuration (default ~/.config/portscope/audit.toml)")
@click.option("--input", "input_file", metavar="FILE",
              help="audit a saved result document (scan --json) instead of scanning")
@click.option("--local", "local_now", is_flag=True,
              help="compare with this machine's listening sockets, taken now (the target "
                   "must be this machine; see --netns, --inventory)")
@click.option("--netns", metavar="NAME",
              help="compare with the sockets of network namespace NAME, taken now (root)")
@click.option("--inventory", "inventories", multiple=True, metavar="[ADDR=]FILE",
              help="compare with a saved inventory ('portscope local --json' on the host, "
                   "or netstat -an / ss -ltnup text); it applies to the scanned host whose "
                   "address it lists, or to ADDR; may be repeated (one per host)")
@click.option("--address", "addresses", multiple=True, metavar="ADDR",
              help="the scanned address(es) that are the local view's host (NAT; default: "
                   "the addresses the inventory lists)")
@click.option("--no-relay-test", is_flag=True, help="do not test mail servers for relaying")
@click.option("--relay-domain", metavar="DOMAIN",
              help="outside domain used as relay destination (default example.com)")
@click.option("--relay-confirm", is_flag=True,
              help="when relaying is accepted, send ONE message (DATA) to --relay-mailbox")
@click.option("--relay-mailbox", metavar="ADDRESS", help="a mailbox you own, for --relay-confirm")
@click.option("--source-address", metavar="ADDR",
              help="the scanner's address as seen by targets (policy 'from' rules; default: "
                   "the local address routing picks)")
@click.option("--no-progress", is_flag=True, help="no progress bar, even on a terminal")
@click.option("-q", "quiet", is_flag=True, help="print only the summary line")
def command(**kw: Any) -> None:
    """Security check of TARGETS: open ports, services, risks, advice (like an ISP's
    security check), with an HTML/Markdown/JSON/CSV/SARIF/DefectDojo report.

    \b
    Examples:
      portscope audit 198.18.0.2 --report check.html --lang ja
      portscope audit 198.18.0.0/24 --policy policy.yaml --fail-on high --report out.sarif
      portscope audit --input scan.json --report check.md
      portscope audit 127.0.0.1 --local --report check.html      # inside vs outside
      sudo portscope audit 198.18.0.2 --netns web1 --report check.html
      portscope audit 198.18.0.2 198.18.0.3 --inventory web1.json --inventory web2.json
    Exit codes: 0 ok, 1 a finding at or above --fail-on, 130 interrupted (see README).
    """
    config = build_config(kw)
    fail_on = fail_level(kw, config)
    outputs = Outputs(requested_outputs(kw))
    reports: list[Output] = []
    try:
        reports = _open_reports(tuple(kw["reports"]))
        progress = stderr_is_tty() and not kw["no_progress"]
        sources = inventory_sources(kw, config)
        if kw.get("input_file"):
            if kw["targets"]:
                raise UsageError("give TARGETS or --input FILE, not both")
            run = read_run(kw["input_file"])
        else:
            prepared = prepare(kw)
            check_sources_reachable(sources, prepared.targets)
            probes = prepared.targets.count() * len(prepared.options.ports)
            if stderr_is_tty() or probes >= LARGE_SCAN:
                click.echo(summary_line(prepared).replace("portscope:", "portscope audit:"),
                           err=True)
            run = execute(prepared, Outputs([]), progress=progress)
            if run.complete:
                run, ran = detect_services(run, progress=progress)
                if not ran and not kw["quiet"]:
                    click.echo("portscope audit: service detection is not available in this "
                               "build; checks use port numbers only", err=True)
                if config.relay.enabled:
                    from portscope.engine.relay import run_relay_tests

                    run = run_relay_tests(run, config.relay)
            if config.policy is not None and config.source is None:
                run = with_sources(run)
        if sources:
            run = with_comparison(run, sources, config)
        run = run_checks(run, config)
        _write(outputs, reports, run)
    finally:
        outputs.close()
        for r in reports:
            r.close()
    if not outputs.to_stdout:
        if not kw["quiet"]:
            show(run)
        for line in comparison_summary(run):
            click.echo(line)
        click.echo(summary(run))
    if not run.complete:
        sys.exit(EXIT_INTERRUPTED)
    if fail_on is not None and any(f.severity.rank >= fail_on.rank for _, f in run.findings):
        sys.exit(EXIT_DIFFERENT)
