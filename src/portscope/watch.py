"""``portscope watch``: scan on a schedule, store each run, diff it against the watch's
baseline, and alert on changes.

One cycle::

    run = scan()                                   # streamed into the store
    diff = diff_runs(baseline, run)                # baseline = last run the watch handled
    alerts = alerts_from_diff(diff, run)           # portscope.alerts.core
    record new alerts as pending (skip muted ones and keys already sent)
    resolve sent alerts whose condition is gone (so a reopened port alerts again)
    baseline := run                                # in the store
    deliver pending alerts; a failed delivery stays pending and is retried next cycle

All state (baseline, alert keys, mutes, schedule) lives in the store, so a restarted
watch neither repeats an alert nor loses one that was found but not yet delivered. The
first run of a watch is its baseline: it raises only state alerts (expiring
certificates), not "new open port" for everything already open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from portscope.alerts import (
    Alert,
    Channel,
    DeliveryError,
    alerts_from_diff,
    muted_by,
    still_active,
)
from portscope.diff import Scope, diff_runs
from portscope.errors import PortscopeError
from portscope.model import ScanRun, expand_host, utcnow
from portscope.store import NoSuchRun, Store

ScanFunction = Callable[[], ScanRun]
"""Runs one scan of the watch (streaming it into the store) and returns the run."""


@dataclass
class CycleReport:
    run_id: str
    complete: bool
    baseline: str | None
    changes: int = 0
    new_alerts: list[str] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    muted: int = 0
    resolved: int = 0


@dataclass
class Watcher:
    store: Store
    name: str
    scan: ScanFunction
    channels: list[Channel]
    every: timedelta
    options: Mapping[str, Any]
    mutes: list[str] = field(default_factory=list)  # normalised scopes from the command line
    min_severity: str = "high"
    cert_days: int = 30
    log: Callable[[str], None] = print
    now: Callable[[], datetime] = utcnow
    stop_event: threading.Event = field(default_factory=threading.Event)

    # -- schedule ------------------------------------------------------------------------

    def next_due(self) -> datetime:
        state = self.store.watch_state(self.name)
        last = state.get("last_started") if state else None
        return last + self.every if last is not None else self.now()

    def run_forever(self, *, count: int | None = None) -> int:
        """Cycles until stopped (or *count* cycles); returns the number of cycles run."""
        self.store.put_watch(self.name, options=self.options,
                             every_s=self.every.total_seconds())
        done = 0
        while not self.stop_event.is_set() and (count is None or done < count):
            wait = (self.next_due() - self.now()).total_seconds()
            if wait > 0:
                due = self.now() + timedelta(seconds=wait)
                self.log(f"next scan at {due:%Y-%m-%d %H:%M:%S} UTC")
                if self.stop_event.wait(wait):
                    break
            self.cycle()
            done += 1
        return done

    def stop(self) -> None:
        self.stop_event.set()

    # -- one cycle -----------------------------------------------------------------------

    def cycle(self) -> CycleReport:
        run = self.scan()
        state = self.store.watch_state(self.name)
        baseline_id = state.get("last_run_id") if state else None
        report = CycleReport(run.id, run.complete, baseline_id)
        if not run.complete:
            # a scan ends incomplete only when it was stopped (Ctrl-C, SIGTERM from
            # systemctl stop): the watch stops too
            self.log(f"run {run.id} was interrupted: stored as incomplete, not compared; "
                     f"stopping")
            self.stop()
            self._deliver(report)
            return report
        baseline: ScanRun | None = None
        if baseline_id:
            try:
                baseline = self.store.load_run(baseline_id)
            except NoSuchRun:
                baseline = None
        diff = diff_runs(baseline, run) if baseline is not None else None
        report.changes = len(diff.changes) if diff else 0
        now = self.now()
        alerts = alerts_from_diff(diff, run, now=now, min_severity=self.min_severity,
                                  cert_days=self.cert_days)
        self._resolve(run, report)
        self._record(alerts, run, now, report)
        self.store.put_watch(self.name, options=self.options,
                             every_s=self.every.total_seconds(), last_run_id=run.id,
                             last_started=run.started)
        what = f"{report.changes} change(s) since {baseline_id}" if baseline_id else \
            "first run: the baseline"
        self.log(f"run {run.id}: {what}, {len(report.new_alerts)} new alert(s)")
        self._deliver(report)
        return report

    def _resolve(self, run: ScanRun, report: CycleReport) -> None:
        scope = Scope(run, {h.address: expand_host(h) for h in run.hosts})
        for row in self.store.alert_rows(watch=self.name, status="sent"):
            active = still_active(row["trigger"], row["address"], row["protocol"],
                                  row["port"], row["key"].rsplit("|", 1)[-1], run,
                                  scope.has_port)
            if active is False:
                row.update(status="resolved", last_seen=self.now(), run_id=run.id)
                self.store.put_alert(row)
                report.resolved += 1

    def _record(self, alerts: list[Alert], run: ScanRun, now: datetime,
                report: CycleReport) -> None:
        existing = {r["key"]: r for r in self.store.alert_rows(watch=self.name)}
        scopes = self.mutes + [m["scope"] for m in self.store.mutes(now=now)]
        for a in alerts:
            row = existing.get(a.key)
            if row is not None and row["status"] in ("sent", "pending"):
                row.update(last_seen=now, run_id=run.id)
                self.store.put_alert(row)
                continue
            mute = muted_by(a, scopes)
            if mute is not None:
                report.muted += 1
                self.log(f"muted ({mute}): {a.text()}")
                continue
            self.store.put_alert({
                "key": a.key, "watch": self.name, "trigger": a.trigger, "address": a.address,
                "protocol": a.protocol, "port": a.port, "check_id": a.check,
                "status": "pending", "first_seen": now, "last_seen": now, "sent": None,
                "run_id": run.id, "attempts": 0,
                "payload": {**a.to_dict(watch=self.name, run_id=run.id, now=now),
                            "text": a.text(), "delivered": []}})
            report.new_alerts.append(a.key)

    def _deliver(self, report: CycleReport) -> None:
        for row in self.store.alert_rows(watch=self.name, status="pending"):
            payload = dict(row["payload"])
            done: list[str] = list(payload.get("delivered") or [])
            text = str(payload.pop("text", ""))
            body = {k: v for k, v in payload.items() if k != "delivered"}
            failed = False
            for ch in self.channels:
                label = ch.describe()
                if label in done:
                    continue
                try:
                    ch.send(body, text)
                except DeliveryError as exc:
                    failed = True
                    self.log(f"alert not delivered, retried next cycle: {exc.message}")
                    continue
                except PortscopeError as exc:  # a channel's own problem
                    failed = True
                    self.log(f"alert not delivered: {exc.message}")
                    continue
                done.append(label)
            row["payload"] = {**body, "text": text, "delivered": done}
            row["attempts"] = int(row.get("attempts") or 0) + 1
            if failed:
                report.failed += 1
            else:
                row.update(status="sent", sent=self.now())
                report.delivered += 1
                self.log(f"alert: {text}")
            self.store.put_alert(row)
