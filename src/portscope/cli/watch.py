"""``portscope watch``: rescan on a schedule, store every run, diff, alert."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

import click

from portscope.cli._store import db_option, open_db
from portscope.cli.common import Outputs
from portscope.cli.scan import _NOT_STORED, execute, prepare, scan_options, stored_options
from portscope.errors import UsageError
from portscope.model import ScanRun

AuditFunction = Callable[[ScanRun], ScanRun]


def load_audit(config_file: str | None = None) -> AuditFunction:
    """The security checks of ``--audit``: ``portscope.checks.run_checks`` with the audit
    configuration (``--config FILE``, else the default file). Tests replace this."""
    from portscope.checks import run_checks
    from portscope.checks.config import load_config

    config = load_config(config_file)

    def audit(run: ScanRun) -> ScanRun:
        result = run_checks(run, config)
        return replace(result, extra={**result.extra, "audited": True})

    return audit


@click.command("watch", context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@scan_options
@db_option
@click.option("--every", "every", default="1h", show_default=True, metavar="DURATION",
              help="time between scans: 30m, 1h, 1d ...")
@click.option("--audit", "audit", is_flag=True,
              help="run the security checks on every run (alerts on new findings)")
@click.option("--config", "config_file", metavar="FILE",
              help="the audit configuration for --audit (see 'portscope audit --help')")
@click.option("--alert", "alerts", multiple=True, metavar="CHANNEL",
              help="webhook:URL | email:TO[?smtp=HOST:PORT&from=ADDR&starttls=1] | "
                   "syslog[:HOST[:PORT]] | command:CMD (repeatable)")
@click.option("--mute", "mutes", multiple=True, metavar="SCOPE",
              help="never alert for ADDRESS, ADDRESS:PORT[/udp], port:N, check:ID or "
                   "trigger:NAME (repeatable; 'portscope alerts mute' stores mutes)")
@click.option("--min-severity", default="high", show_default=True,
              type=click.Choice(["critical", "high", "medium", "low", "info"]),
              help="alert on new findings at or above this severity")
@click.option("--cert-days", default=30, show_default=True, type=int, metavar="DAYS",
              help="alert when a certificate expires within DAYS")
@click.option("--name", "name", metavar="NAME",
              help="the watch's name (default: its targets); state is kept per name")
@click.option("--count", type=int, metavar="N", help="stop after N scans (default: never)")
def command(**kw: Any) -> None:
    """Watch TARGETS: scan every DURATION, keep each run in the store, compare it with the
    previous one, and alert on a new open port, a new high finding, an expiring
    certificate or a changed service version.

    \b
    The first run is the baseline. Alerts are sent once per host:port/event and again
    only after the condition went away and came back; the state is in the store, so a
    restarted watch sends no duplicates. Stop with Ctrl-C or SIGTERM (as a service:
    docs/watch.md has a systemd unit).
    \b
      portscope watch 198.18.0.0/24 --every 1h --alert webhook:https://hooks.example/ps
      portscope watch -p- 198.18.0.2 --every 15m --audit --alert syslog --mute check:ssh-weak
    """
    from portscope.alerts import normalize_scope, parse_channel
    from portscope.store import RunWriter, parse_duration
    from portscope.watch import Watcher

    if kw.get("state_file") or kw.get("resume_file"):
        raise UsageError("--state and --resume are for 'portscope scan'; a watch keeps its "
                         "state in the store")
    every = parse_duration(kw["every"])
    if every.total_seconds() < 1:
        raise UsageError("--every must be at least 1s")
    channels = [parse_channel(spec) for spec in kw["alerts"]]
    mutes = [normalize_scope(m) for m in kw["mutes"]]
    prepare(kw)  # bad targets/ports fail now, not at the first cycle
    audit = load_audit(kw["config_file"]) if kw["audit"] else None
    scan_kw = {k: v for k, v in kw.items() if k in _SCAN_KEYS}
    name = kw["name"] or " ".join(kw["targets"]) or "watch"
    log = _logger()

    with open_db(kw) as store:
        def scan() -> ScanRun:
            prepared = prepare(dict(scan_kw))
            if prepared.options.seed is None:
                import secrets

                prepared.options.seed = secrets.randbits(32)
            writer = RunWriter(store, source="watch", watch=name,
                               options=stored_options(scan_kw, prepared))
            return execute(prepared, Outputs([]), progress=False, writer=writer,
                           finalize=audit)

        watcher = Watcher(store=store, name=name, scan=scan, channels=channels, every=every,
                          options={k: _jsonable(v) for k, v in scan_kw.items()}, mutes=mutes,
                          min_severity=kw["min_severity"], cert_days=kw["cert_days"],
                          log=log)
        targets = ", ".join(c.describe() for c in channels) or "no alert channel"
        log(f"watching {name} every {kw['every']} (store {store.label}; alerts: {targets})")

        def on_term(signum: int, frame: FrameType | None) -> None:
            watcher.stop()

        old = signal.signal(signal.SIGTERM, on_term)
        try:
            watcher.run_forever(count=kw["count"])
        except KeyboardInterrupt:
            log("stopped")
        finally:
            signal.signal(signal.SIGTERM, old)


def _scan_keys() -> set[str]:
    """The parameter names of ``scan_options`` (whatever scan options exist)."""
    def probe() -> None:
        pass

    params = getattr(scan_options(probe), "__click_params__", [])
    return {str(p.name) for p in params} - _NOT_STORED


_SCAN_KEYS = _scan_keys()


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _logger() -> Callable[[str], None]:
    def log(message: str) -> None:
        from portscope.model import utcnow

        stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{stamp} portscope watch: {message}", err=True)
        sys.stderr.flush()

    return log
