"""``portscope alerts``: the alerts of the watches, and mutes."""

from __future__ import annotations

import json
import sys

import click

from portscope.cli._store import db_option, open_db


@click.group("alerts", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Alerts raised by 'portscope watch', and mutes (per host, host:port, port, check or
    trigger)."""


@command.command("list")
@db_option
@click.option("--watch", "watch", metavar="NAME")
@click.option("--status", type=click.Choice(["pending", "sent", "resolved"]))
@click.option("--json", "as_json", is_flag=True)
def list_(db_url: str | None, watch: str | None, status: str | None, as_json: bool) -> None:
    """Alerts, oldest first: pending (not delivered yet), sent, resolved."""
    with open_db({"db_url": db_url}) as store:
        rows = store.alert_rows(watch=watch, status=status)
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps({**r["payload"], "status": r["status"],
                                         "attempts": r["attempts"]}, default=str) + "\n")
        return
    if not rows:
        click.echo("no alerts")
        return
    for r in rows:
        first = r["first_seen"].strftime("%Y-%m-%d %H:%M") if r["first_seen"] else ""
        click.echo(f"{first}  {r['status']:<8}  {r['watch']}  {r['payload'].get('text', '')}")


@command.command("mute")
@click.argument("scope")
@db_option
@click.option("--for", "duration", metavar="DURATION", help="expire after 1h, 7d ...")
@click.option("--reason", default="", help="why (shown by 'alerts mutes')")
def mute(scope: str, db_url: str | None, duration: str | None, reason: str) -> None:
    """Silence alerts for SCOPE: ADDRESS, ADDRESS:PORT[/udp], port:N, check:ID or
    trigger:NAME (new_open_port, new_finding, cert_expiring, service_changed,
    cert_changed)."""
    from portscope.alerts import normalize_scope
    from portscope.model import utcnow
    from portscope.store import parse_duration

    norm = normalize_scope(scope)
    until = utcnow() + parse_duration(duration) if duration else None
    with open_db({"db_url": db_url}) as store:
        store.mute(norm, until=until, reason=reason)
    click.echo(f"muted {norm}" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""))


@command.command("unmute")
@click.argument("scope")
@db_option
def unmute(scope: str, db_url: str | None) -> None:
    """Remove a mute."""
    from portscope.alerts import normalize_scope

    norm = normalize_scope(scope)
    with open_db({"db_url": db_url}) as store:
        found = store.unmute(norm)
    click.echo(f"unmuted {norm}" if found else f"no mute {norm}")


@command.command("mutes")
@db_option
def mutes(db_url: str | None) -> None:
    """The mutes in force."""
    with open_db({"db_url": db_url}) as store:
        rows = store.mutes()
    if not rows:
        click.echo("no mutes")
    for r in rows:
        until = f"until {r['until']:%Y-%m-%d %H:%M} UTC" if r["until"] else "forever"
        click.echo(f"{r['scope']}  {until}  {r['reason']}".rstrip())
