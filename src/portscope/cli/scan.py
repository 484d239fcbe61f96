"""``portscope scan``: find which ports answer, like nmap, with portscope's outputs."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from portscope.cli._store import DB_ENV, db_option, open_db
from portscope.cli.common import Outputs, output_options, requested_outputs, stderr_is_tty
from portscope.engine.scan import Resume, Scanner, ScanOptions
from portscope.engine.timing import template
from portscope.errors import EXIT_INTERRUPTED, PortscopeError, UsageError
from portscope.model import HostStatus, PortResult, ScanRun
from portscope.probes import get as get_scan_type
from portscope.targets import (
    PortSpec,
    TargetSet,
    parse_ports,
    parse_targets,
    read_target_file,
    service_db,
    top_ports,
)
from portscope.targets.ports import merge

if TYPE_CHECKING:
    from portscope.engine.services import ServiceOptions
    from portscope.store import RunWriter, Store

DEFAULT_TOP_PORTS = 1000
LARGE_SCAN = 100_000  # probes: print a summary of what will be sent first


def scan_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The target/port/timing options shared by scan, audit and watch."""
    opts = [
        click.argument("targets", nargs=-1, metavar="TARGETS..."),
        click.option("-p", "ports", metavar="PORTS",
                     help="ports: 22,80,443 | 1-1024 | - (all) | U:53,T:80 | ssh,http"),
        click.option("--top-ports", type=int, metavar="N",
                     help=f"the N most commonly open ports (default {DEFAULT_TOP_PORTS})"),
        click.option("--exclude-ports", metavar="PORTS", help="ports not to scan"),
        click.option("-s", "scan_flags", multiple=True, metavar="TYPE",
                     help="scan type: -sT connect (default), -sS SYN, -sF FIN, -sN NULL, "
                          "-sX Xmas, -sA ACK, -sW Window, -sU UDP, -sn discovery only; "
                          "-sV adds service/version detection"),
        click.option("--version-intensity", type=click.IntRange(0, 9), metavar="0-9",
                     help="-sV: how many probes to try on unknown ports (default 7)"),
        click.option("--version-light", is_flag=True,
                     help="-sV with intensity 2: fewer probes, shorter waits on unknown ports"),
        click.option("--version-all", is_flag=True, help="-sV with intensity 9 (every probe)"),
        click.option("--version-timeout", type=float, metavar="SECONDS",
                     help="-sV: longest wait for one answer (default 5)"),
        click.option("--snmp-community", metavar="NAME",
                     help="-sV: SNMP community to read sysDescr with (default public)"),
        click.option("-O", "os_detection", is_flag=True,
                     help="OS detection: fingerprint the TCP/IP stack (raw packets: root)"),
        click.option("-A", "aggressive", is_flag=True, help="the same as -sV -O"),
        click.option("-Pn", "skip_discovery", is_flag=True,
                     help="treat all hosts as up: skip host discovery"),
        click.option("--disable-arp-ping", "disable_arp_ping", is_flag=True,
                     help="no ARP/ND discovery of hosts on a local link (default when root: "
                          "ARP/ND there, IP probes elsewhere)"),
        click.option("--send-ip", "send_ip", is_flag=True,
                     help="discover local-link hosts with IP probes too (implies "
                          "--disable-arp-ping)"),
        click.option("-T", "timing_level", type=int, default=3, show_default=True,
                     metavar="0-5", help="timing template (0 paranoid ... 5 insane)"),
        click.option("--min-rate", type=float, metavar="PPS", help="send at least this rate"),
        click.option("--max-rate", type=float, metavar="PPS", help="send at most this rate"),
        click.option("--max-retries", type=int, metavar="N", help="retransmissions at most"),
        click.option("--max-parallelism", type=int, metavar="N", help="probes in flight at most"),
        click.option("--scan-delay", type=float, metavar="SECONDS",
                     help="wait between probes"),
        click.option("--host-timeout", type=float, metavar="SECONDS",
                     help="give up on a host after this long"),
        click.option("--min-rtt-timeout", type=float, metavar="SECONDS"),
        click.option("--max-rtt-timeout", type=float, metavar="SECONDS"),
        click.option("--initial-rtt-timeout", type=float, metavar="SECONDS"),
        click.option("-iL", "input_list", metavar="FILE",
                     help="read targets from FILE (one or more a line, # comments; - = stdin)"),
        click.option("--exclude", metavar="SPECS", multiple=True,
                     help="targets to leave out (comma separated)"),
        click.option("--excludefile", metavar="FILE", help="targets to leave out, from FILE"),
        click.option("-6", "ipv6", is_flag=True, help="resolve host names to IPv6 addresses"),
        click.option("--seed", type=int, help="seed of the random probe order (reproducible)"),
        click.option("-r", "sequential", is_flag=True, help="probe in sequential order"),
        click.option("--shard", metavar="I/N",
                     help="scan only shard I of N (0-based) of the probe space"),
        click.option("--state", "state_file", metavar="FILE",
                     help="save the scan's progress to FILE (continue it with --resume)"),
        click.option("--resume", "resume_file", metavar="FILE|RUN",
                     help="continue the scan saved with --state FILE (same seed and shard; "
                          "give the same targets and options), or complete the stored run "
                          "RUN (id, prefix, latest: with its own options, no targets); "
                          "decided ports are not probed again"),
        click.option("--no-fallback", is_flag=True,
                     help="raw scans (-sS ...) without root/CAP_NET_RAW: fail instead of "
                          "falling back to -sT"),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


@dataclass
class PreparedScan:
    targets: TargetSet
    options: ScanOptions


def _parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (0, 1)
    try:
        i_s, n_s = text.split("/", 1)
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise UsageError(f"--shard takes I/N, e.g. 0/4, not {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return (i, n)


def prepare(kw: dict[str, Any], *, argv: list[str] | None = None) -> PreparedScan:
    """Turn parsed command-line options into targets and scan options."""
    specs = list(kw["targets"])
    if kw.get("input_list"):
        specs.extend(read_target_file(kw["input_list"]))
    if not specs:
        raise UsageError("no targets given (e.g. 'portscope scan 127.0.0.1'; -iL FILE reads "
                         "targets from a file)")
    excludes: list[str] = list(kw.get("exclude") or ())
    if kw.get("excludefile"):
        excludes.extend(read_target_file(kw["excludefile"]))

    flags: list[str] = []
    discovery_only = False
    versions = False
    for f in kw.get("scan_flags") or ():
        for letter in f:
            if letter == "n":
                discovery_only = True
            elif letter == "V":
                versions = True
            elif letter not in flags:
                flags.append(letter)
    for letter in flags:
        get_scan_type(letter)  # unknown types fail here with a list of known ones
    if not flags:
        flags = ["T"]
    protocols = tuple(dict.fromkeys(get_scan_type(f).protocol for f in flags))

    db = service_db()
    if kw.get("top_ports") is not None and kw["top_ports"] <= 0:
        raise UsageError(f"--top-ports needs a positive number, not {kw['top_ports']}")
    if kw.get("ports") and kw.get("top_ports"):
        ports = merge(parse_ports(kw["ports"], protocols, db=db),
                      top_ports(kw["top_ports"], protocols, db=db))
    elif kw.get("ports"):
        ports = parse_ports(kw["ports"], protocols, db=db)
    else:
        ports = top_ports(kw.get("top_ports") or DEFAULT_TOP_PORTS, protocols, db=db)
    if kw.get("exclude_ports"):
        ports = ports.without(parse_ports(kw["exclude_ports"], ("tcp", "udp"), db=db))
    for proto in ports.protocols:
        if proto not in protocols:
            raise UsageError(f"{proto.upper()} ports given but no {proto.upper()} scan "
                             f"requested (add -sU for UDP)" if proto == "udp" else
                             "TCP ports given but only UDP scans requested")
    ports = PortSpec(tcp=ports.tcp if "tcp" in protocols else (),
                     udp=ports.udp if "udp" in protocols else ())
    if not ports and not discovery_only:
        raise UsageError("no ports left to scan")

    timing = template(kw.get("timing_level", 3)).with_overrides(
        max_retries=kw.get("max_retries"), max_rate=kw.get("max_rate"),
        min_rate=kw.get("min_rate"), max_parallel=kw.get("max_parallelism"),
        scan_delay=kw.get("scan_delay"), host_timeout=kw.get("host_timeout"),
        min_rtt_timeout=kw.get("min_rtt_timeout"), max_rtt_timeout=kw.get("max_rtt_timeout"),
        initial_rtt_timeout=kw.get("initial_rtt_timeout"),
    )
    targets = parse_targets(specs, exclude=excludes, ipv6=bool(kw.get("ipv6")))
    command = shlex.join(["portscope", *(argv if argv is not None else sys.argv[1:])])
    options = ScanOptions(
        ports=ports, scan_types=tuple(flags), timing=timing, seed=kw.get("seed"),
        skip_discovery=bool(kw.get("skip_discovery")), discovery_only=discovery_only,
        randomize=not kw.get("sequential"), shard=_parse_shard(kw.get("shard")),
        command=command, no_fallback=bool(kw.get("no_fallback")),
        state_file=kw.get("state_file"), resume_file=kw.get("resume_file"),
        services=service_options(kw, enabled=versions or bool(kw.get("aggressive"))),
        os_detection=bool(kw.get("os_detection") or kw.get("aggressive")),
        arp_ping=not (kw.get("disable_arp_ping") or kw.get("send_ip")),
    )
    return PreparedScan(targets, options)


def service_options(kw: dict[str, Any], *, enabled: bool) -> ServiceOptions | None:
    """-sV and its --version-* options as ServiceOptions (None without -sV)."""
    light, every, level = kw.get("version_light"), kw.get("version_all"), \
        kw.get("version_intensity")
    if sum(1 for x in (light, every, level is not None) if x) > 1:
        raise UsageError("give only one of --version-intensity, --version-light, "
                         "--version-all")
    if not enabled:
        used = [name for name, value in (("--version-intensity", level is not None),
                                         ("--version-light", light), ("--version-all", every),
                                         ("--version-timeout", kw.get("version_timeout")),
                                         ("--snmp-community", kw.get("snmp_community")))
                if value]
        if used:
            raise UsageError(f"{used[0]} needs -sV (service detection)")
        return None
    from portscope.engine.services import INTENSITY_ALL, INTENSITY_LIGHT, ServiceOptions

    intensity = INTENSITY_LIGHT if light else INTENSITY_ALL if every else \
        (level if level is not None else 7)
    extra: dict[str, Any] = {}
    if kw.get("version_timeout") is not None:
        t = float(kw["version_timeout"])
        extra.update(timeout=t, banner_wait=t, connect_timeout=t)
    if kw.get("snmp_community") is not None:
        extra["snmp_community"] = kw["snmp_community"]
    return ServiceOptions(intensity=intensity, **extra)


@contextmanager
def _interrupts(scanner: Scanner) -> Iterator[list[bool]]:
    """First Ctrl-C stops the scan cleanly (outputs are finished, marked incomplete);
    a second one aborts."""
    hit: list[bool] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if hit:
            raise KeyboardInterrupt
        hit.append(True)
        click.echo("\nportscope: stopping (Ctrl-C again to abort) ...", err=True)
        scanner.stop()

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield hit
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


class _Progress:
    """A Rich progress bar on a terminal; nothing on a pipe."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self.open_seen = 0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[open]} open"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def phase(self, name: str, total: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=total, open=self.open_seen)

    def advance(self, result: PortResult) -> None:
        if self._progress is None or self._task is None:
            return
        if result.state.value == "open":
            self.open_seen += 1
        self._progress.update(self._task, advance=1, open=self.open_seen)

    def identified(self, result: PortResult) -> None:
        """One more port through service detection (opens are already counted)."""
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, advance=1, open=self.open_seen)


def execute(prepared: PreparedScan, outputs: Outputs, *, progress: bool,
            on_port: Callable[[str, PortResult], None] | None = None,
            writer: RunWriter | None = None, resume: Resume | None = None,
            finalize: Callable[[ScanRun], ScanRun] | None = None) -> ScanRun:
    """Run a prepared scan, streaming to *outputs* and into the store (*writer*);
    returns the (maybe incomplete) run. *resume* continues an interrupted run;
    *finalize* may enrich the run (findings ...) before it is stored and written."""
    bar = _Progress(progress)

    # the per-port hooks that do something (once per port: 65,535 calls for a -p- host)
    hooks = [h for h in (writer.port if writer is not None else None,
                         outputs.port if outputs.wants_ports else None,
                         (lambda _a, r: bar.advance(r)) if bar.enabled else None,
                         on_port) if h is not None]

    def port_cb(address: str, result: PortResult) -> None:
        for hook in hooks:
            hook(address, result)

    def service_cb(address: str, result: PortResult) -> None:
        # the port again, now with what answers there (the store upserts it)
        if writer is not None:
            writer.port(address, result)
        outputs.port(address, result)
        bar.identified(result)
        if on_port:
            on_port(address, result)

    def start_cb(header: ScanRun) -> None:
        if writer is not None:
            writer.start(header)
        outputs.start(header)

    scanner = Scanner(prepared.targets, prepared.options,
                      on_port=(hooks[0] if len(hooks) == 1 else port_cb) if hooks else None,
                      on_host=outputs.host, on_start=start_cb, on_phase=bar.phase,
                      on_warning=lambda text: click.echo(f"portscope: warning: {text}",
                                                         err=True),
                      on_service=service_cb, resume=resume)
    finished = False
    try:
        with _interrupts(scanner), bar:
            run = scanner.run()
        if finalize is not None:
            run = finalize(run)
        if writer is not None:
            writer.finish(run)
        finished = True
    finally:
        if writer is not None and not finished:
            writer.close()  # what was found is committed; the run stays incomplete
            if writer.run_id is not None:
                with contextlib.suppress(PortscopeError):
                    writer.store.mark_incomplete(writer.run_id)
    outputs.finish(run)
    return run


# --------------------------------------------------------------------------------------
# the store: options kept with the run, --resume

_NOT_STORED = {"db_url", "no_store", "resume", "resume_file", "state_file", "json_out",
               "jsonl_out", "xml_out", "normal_out", "only_open", "no_progress", "verbose"}


def stored_options(kw: dict[str, Any], prepared: PreparedScan) -> dict[str, Any]:
    """The scan's options as kept with the run, for ``--resume``: the command-line
    options with target and exclude files read in and the seed fixed."""
    out: dict[str, Any] = {}
    for key, value in kw.items():
        if key in _NOT_STORED:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    out["targets"] = list(prepared.targets.specs)
    out["input_list"] = None
    if kw.get("excludefile"):
        out["exclude"] = [*out.get("exclude", []), *read_target_file(kw["excludefile"])]
        out["excludefile"] = None
    out["seed"] = prepared.options.seed
    return out


def prepare_resume(store: Store, ref: str) -> tuple[PreparedScan, Resume, dict[str, Any]]:
    """The scan to run to complete the interrupted run *ref*, with its original options."""
    run_id, options, status = store.run_options(ref)
    if status == "complete":
        raise UsageError(f"run {run_id} is complete: nothing to resume")
    if status == "running":
        raise UsageError(f"run {run_id} is still being written by a running scan")
    if not options:
        raise UsageError(f"run {run_id} cannot be resumed: it was not started by "
                         f"'portscope scan' (an import, or a watch)")
    previous = store.load_run(run_id)
    prepared = prepare(dict(options), argv=shlex.split(previous.command)[1:]
                       if previous.command else [])
    prepared.options.seed = options.get("seed")
    prepared.options.run_id = run_id
    prepared.options.command = previous.command or prepared.options.command
    resume = Resume(run=previous, decided=store.decided(run_id),
                    results={h.address: h.ports for h in previous.hosts},
                    live={h.address: h.reason or "stored" for h in previous.hosts
                          if h.status is HostStatus.UP})
    return prepared, resume, options


def _open_store_for_scan(kw: dict[str, Any]) -> Store | None:
    """The store a scan writes to: ``--db``/``PORTSCOPE_DB``/the default file. When the
    default file cannot be opened the scan still runs (with a warning)."""
    if kw.get("no_store"):
        if kw.get("resume"):
            raise UsageError("--resume needs the store: drop --no-store")
        return None
    try:
        return open_db(kw)
    except PortscopeError as exc:
        if kw.get("db_url") or os.environ.get(DB_ENV) or kw.get("resume"):
            raise
        click.echo(f"portscope: warning: results not stored ({exc.message}); "
                   f"--db URL chooses another store, --no-store silences this", err=True)
        return None


def summary_line(prepared: PreparedScan) -> str:
    o = prepared.options
    hosts = prepared.targets.count()
    nports = len(o.ports)
    types = " ".join(f"-s{f}" for f in o.scan_types) + (" -sV" if o.services else "") + \
        (" -O" if o.os_detection else "")
    probes = hosts * nports
    rate = f", max {o.timing.max_rate:,.0f} pps" if o.timing.max_rate else ""
    return (f"portscope: {hosts:,} host(s) x {nports:,} port(s) = {probes:,} probes "
            f"({types}, -T{_level(o.timing.name)} {o.timing.name}{rate})")


def _level(name: str) -> int:
    from portscope.engine.timing import TEMPLATES

    return next((k for k, t in TEMPLATES.items() if t.name == name), 3)


@click.command("scan", context_settings={"help_option_names": ["-h", "--help"],
                                         "max_content_width": 100})
@scan_options
@output_options
@db_option
@click.option("--no-store", is_flag=True, help="do not keep the results in the store")
@click.option("--open", "only_open", is_flag=True, help="show only open (or possibly open) ports")
@click.option("--no-progress", is_flag=True, help="no progress bar, even on a terminal")
@click.option("-v", "verbose", count=True, help="more detail")
def command(**kw: Any) -> None:
    """Scan TARGETS for open ports (default: the 1000 most common TCP ports, -sT).

    \b
    Targets: 198.18.0.2  198.18.0.0/24  198.18.0.1-20  198.18.1-3.1-254
             2001:db8::/120  host.example  (-iL FILE, --exclude, --excludefile)
    Examples:
      portscope scan 127.0.0.1
      portscope scan -p- -T4 198.18.0.2 --json out.json
      portscope scan -p 22,80,443 198.18.0.0/24 -oX scan.xml
      portscope scan -sV -p 1-1024,8080 198.18.0.2
      portscope scan --resume latest       # complete an interrupted run

    Every result goes into the store as it arrives (--db, --no-store): 'portscope runs',
    'portscope diff latest~1 latest'.
    """
    # --resume FILE: a --state file (engine/resume.py); --resume RUN: a stored run
    ref = kw.get("resume_file")
    kw["resume"] = None
    if ref and not os.path.exists(ref):
        kw["resume"], kw["resume_file"] = ref, None
    if kw.get("resume") and (kw.get("targets") or kw.get("input_list")):
        raise UsageError("--resume takes the targets and options of the stored run: "
                         "give no targets")
    store = _open_store_for_scan(kw)
    try:
        resume = None
        if kw.get("resume"):
            assert store is not None
            prepared, resume, options = prepare_resume(store, kw["resume"])
        else:
            prepared = prepare(kw)
            if prepared.options.seed is None:
                prepared.options.seed = secrets.randbits(32)
            options = stored_options(kw, prepared)
        writer: RunWriter | None = None
        if store is not None:
            from portscope.store import RunWriter

            writer = RunWriter(store, options=options)
        if writer is not None and resume is not None:
            writer.prime((a, p) for a, ps in resume.results.items() for p in ps)
        outputs = Outputs(requested_outputs(kw))
        try:
            probes = prepared.targets.count() * len(prepared.options.ports)
            if stderr_is_tty() or probes >= LARGE_SCAN:
                click.echo(summary_line(prepared), err=True)
            progress = stderr_is_tty() and not kw["no_progress"]
            run = execute(prepared, outputs, progress=progress, writer=writer, resume=resume)
        finally:
            outputs.close()
    finally:
        if store is not None:
            store.close()
    if not outputs.to_stdout:
        show(run, only_open=kw["only_open"])
    if store is not None:
        if not run.complete:
            click.echo(f"portscope: run {run.id} is incomplete and stored: "
                       f"'portscope scan --resume {run.id}' completes it", err=True)
        elif stderr_is_tty():
            click.echo(f"portscope: stored as run {run.id} ({store.label})", err=True)
    if not run.complete:
        sys.exit(EXIT_INTERRUPTED)


def show(run: ScanRun, *, only_open: bool = False) -> None:
    """Print the result table: Rich on a terminal, nmap-style text on a pipe."""
    from dataclasses import replace

    from portscope.model import PortState

    if only_open:
        keep = (PortState.OPEN, PortState.OPEN_FILTERED)
        run = replace(run, hosts=tuple(
            replace(h, ports=tuple(p for p in h.ports if p.state in keep), extraports=())
            for h in run.hosts))
    if sys.stdout.isatty():
        from rich.console import Console

        from portscope.report.terminal import render_terminal

        console = Console()
        console.print(render_terminal(run))
    else:
        from portscope.report import render

        sys.stdout.write(render("normal", run))
        sys.stdout.flush()
