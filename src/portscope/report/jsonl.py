"""``jsonl``: JSON Lines, streamed as results arrive.

One JSON object per line, each with a ``"type"``. Every line is written with a single
write and flushed at once, so the file is valid JSON Lines at every moment: after a
crash at most the last line is cut short, and :func:`read_jsonl` ignores it.

Events, in the order they appear::

    {"type": "run", "schema_version": 1, "run": {...}}
        The run header, once, first: the ``run`` object of the result contract
        (id, started, command, scan_types, ports_spec, targets, vantage, ...).

    {"type": "port", "address": "192.0.2.7", "port": 22, "protocol": "tcp",
     "state": "open", "reason": "syn-ack", "ttl": 64, "service": {...} | null}
        A port result as soon as it is decided: the address plus the contract's port
        object, flat (``jq 'select(.type=="port" and .state=="open")'``). With service
        detection (-sV) an open port comes again once identified: a later ``port`` line
        for the same address, protocol and port replaces an earlier one.

    {"type": "host", "address": ..., "hostnames": [...], "status": "up", "reason": ...,
     "mac", "rtt_ms", "os", "ports": [...], "extraports": [...], "findings": [...],
     "extra"}
        A finished host: the contract's host object, collapsed like the ``json`` format
        (big groups of closed/filtered ports in ``extraports`` with exact port lists).
        It is complete on its own. A later ``host`` line for the same address replaces
        an earlier one: when the final run differs from what was streamed (findings are
        added after the scan, for instance), ``finish`` writes the host again.

    {"type": "end", "complete": true, "finished": "2026-...Z", "stats": {...}}
        The last line. ``complete`` is false for an interrupted scan (Ctrl-C). A stream
        without an ``end`` line was cut short: readers treat it as incomplete.

Readers must ignore unknown event types and unknown fields (they may be added without a
schema_version bump).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar, TextIO

from portscope.errors import DataError
from portscope.model import (
    SCHEMA_VERSION,
    Host,
    HostStatus,
    PortResult,
    PortState,
    ScanRun,
    Stats,
    collapse_host,
    expand_host,
    format_time,
    parse_time,
)
from portscope.model.core import normalize_address
from portscope.report._common import json_dumps, sorted_ports
from portscope.report.base import Output


class JSONLinesOutput(Output):
    name: ClassVar[str] = "jsonl"
    streaming: ClassVar[bool] = True

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._header_written = False
        self._written_hosts: dict[str, int] = {}  # address -> hash of its last host line

    def _event(self, obj: dict[str, Any]) -> str:
        line = json_dumps(obj, ascii_only=not self.unicode_ok)
        self.write(line + "\n")
        self.flush()
        return line

    def _header(self, run: ScanRun) -> None:
        if not self._header_written:
            self._event({"type": "run", "schema_version": SCHEMA_VERSION,
                         "run": run.to_dict()["run"]})
            self._header_written = True

    def start(self, run: ScanRun) -> None:
        self._header(run)

    def port(self, address: str, result: PortResult) -> None:
        self._event({"type": "port", "address": address, **result.to_dict()})

    def host(self, host: Host) -> None:
        line = self._event({"type": "host", **collapse_host(host).to_dict()})
        self._written_hosts[host.address] = hash(line)

    def finish(self, run: ScanRun) -> None:
        self._header(run)
        for h in run.hosts:
            line = json_dumps({"type": "host", **collapse_host(h).to_dict()},
                              ascii_only=not self.unicode_ok)
            if self._written_hosts.get(h.address) != hash(line):
                self.write(line + "\n")
                self._written_hosts[h.address] = hash(line)
        self._event({"type": "end", "complete": run.complete,
                     "finished": format_time(run.finished), "stats": run.stats.to_dict()})


# --------------------------------------------------------------------------------------
# reader


_RESPONSIVE = frozenset({PortState.OPEN, PortState.CLOSED, PortState.UNFILTERED})


def read_jsonl(lines: Iterable[str]) -> ScanRun:
    """Rebuild a run from a JSON Lines stream written by :class:`JSONLinesOutput`.

    Works on a stream cut short at any point: a truncated last line is ignored, hosts
    with ``port`` lines but no ``host`` line are rebuilt from their ports, and a stream
    without an ``end`` line gives ``complete=False``. Hosts come back expanded (every
    port listed, no ``extraports``). Raises :class:`~portscope.errors.DataError` for a
    stream that is not portscope JSON Lines or is corrupt before its last line.
    """
    header: dict[str, Any] | None = None
    schema_version: Any = None
    hosts: dict[str, Host] = {}
    streamed: dict[str, dict[tuple[str, int], PortResult]] = {}
    end: dict[str, Any] | None = None
    pending_error: DataError | None = None

    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        if pending_error is not None:  # a bad line that turned out not to be the last
            raise pending_error
        try:
            event = json.loads(text)
        except ValueError:
            pending_error = DataError(f"line {number}: not valid JSON")
            continue
        if not isinstance(event, dict):
            raise DataError(f"line {number}: expected a JSON object")
        kind = event.get("type")
        where = f"line {number}"
        if kind == "run":
            if header is not None:
                raise DataError(f"{where}: a second run header (streams were concatenated?)")
            run_obj = event.get("run")
            if not isinstance(run_obj, dict):
                raise DataError(f"{where}: run event without a run object")
            header, schema_version = run_obj, event.get("schema_version")
            continue
        if header is None:
            raise DataError(f"{where}: not a portscope JSON Lines stream (no run header)")
        if kind == "port":
            address = normalize_address(str(event.get("address", "")))
            result = PortResult.from_dict(event, f"{where} port")
            streamed.setdefault(address, {})[result.key] = result
        elif kind == "host":
            host = Host.from_dict(event, f"{where} host")
            hosts[host.address] = expand_host(host)
        elif kind == "end":
            end = event
        # unknown event types are ignored

    if header is None:
        if pending_error is not None:
            raise pending_error
        raise DataError("not a portscope JSON Lines stream (no run header)")

    run = ScanRun.from_dict({"schema_version": schema_version, "run": header})
    for address, ports in streamed.items():
        known_host = hosts.get(address)
        if known_host is None:
            up = any(p.state in _RESPONSIVE for p in ports.values())
            hosts[address] = Host(address=address,
                                  status=HostStatus.UP if up else HostStatus.UNKNOWN,
                                  ports=tuple(sorted_ports(ports.values())))
        else:
            known = {p.key for p in known_host.ports}
            extra = [p for k, p in ports.items() if k not in known]
            if extra:
                hosts[address] = replace(known_host,
                                         ports=tuple(sorted_ports([*known_host.ports, *extra])))

    if end is None:
        run = replace(run, complete=False)
    else:
        finished = parse_time(end.get("finished"), "end.finished")
        stats = end.get("stats")
        run = replace(
            run,
            complete=bool(end.get("complete", False)),
            finished=finished if finished is not None else run.finished,
            stats=Stats.from_dict(stats, "end.stats") if isinstance(stats, dict) else run.stats,
        )
    return run.with_hosts(hosts.values())
