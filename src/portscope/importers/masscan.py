"""masscan's own outputs: JSON (``-oJ``), NDJSON (``-oD``) and list (``-oL``).

masscan writes one record per (address, port) as it finds it, and only for ports that
answered: its files say nothing about the ports it scanned and found closed, so an
import has no known port scope (``ports_spec`` is empty) and a diff never calls a port
closed on the strength of a masscan file. Banners (``--banners``) become services.

masscan's JSON is not always valid JSON (versions before 1.3 leave a comma before the
closing ``]``, and an interrupted scan has no ``]``); both are accepted.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from portscope.errors import DataError
from portscope.importers.base import Importer, import_id
from portscope.model import (
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Stats,
)
from portscope.model.core import normalize_address

_STATUS = {"open": PortState.OPEN, "closed": PortState.CLOSED}
_Key = tuple[str, str, int]


class _Builder:
    def __init__(self) -> None:
        self.ports: dict[_Key, PortResult] = {}
        self.banners: dict[_Key, dict[str, str]] = {}
        self.times: list[int] = []

    def port(self, ip: str, proto: str, port: int, status: str, reason: str,
             ttl: int | None, ts: int | None, where: str) -> None:
        address = normalize_address(ip)
        if proto not in ("tcp", "udp"):
            return  # sctp, icmp: not in portscope's model
        if not 0 <= port <= 65535:
            raise DataError(f"{where}: port {port} out of range")
        state = _STATUS.get(status)
        if state is None:
            raise DataError(f"{where}: unknown status {status!r}")
        if ts:
            self.times.append(ts)
        key = (address, proto, port)
        self.ports[key] = PortResult(port=port, protocol=Protocol(proto), state=state,
                                     reason=reason or ("syn-ack" if state is PortState.OPEN
                                                       else "reset"),
                                     ttl=ttl if ttl and 0 < ttl <= 255 else None)

    def banner(self, ip: str, proto: str, port: int, name: str, text: str, ts: int | None,
               where: str) -> None:
        address = normalize_address(ip)
        if proto not in ("tcp", "udp") or not 0 <= port <= 65535:
            return
        if ts:
            self.times.append(ts)
        key = (address, proto, port)
        self.banners.setdefault(key, {})[name or "banner"] = text
        if key not in self.ports:  # a banner proves the port open
            self.ports[key] = PortResult(port=port, protocol=Protocol(proto),
                                         state=PortState.OPEN, reason="syn-ack")

    def run(self, data: bytes, fmt: str) -> ScanRun:
        if not self.ports:
            raise DataError("no results in this masscan file")
        hosts: dict[str, list[PortResult]] = {}
        for (address, proto, port), p in self.ports.items():
            b = self.banners.get((address, proto, port))
            if b:
                name = next((k for k in b if k not in ("title", "banner")), "unknown")
                text = b.get(name) or next(iter(b.values()))
                p = PortResult(port=p.port, protocol=p.protocol, state=p.state,
                               reason=p.reason, ttl=p.ttl,
                               service=Service(name=name, banner=text, method="banner",
                                               confidence=5, extra={"masscan": b}))
            hosts.setdefault(address, []).append(p)
        started = datetime.fromtimestamp(min(self.times), UTC) if self.times else \
            datetime.fromtimestamp(0, UTC)
        finished = datetime.fromtimestamp(max(self.times), UTC) if self.times else None
        host_objs = [Host(address=a, status=HostStatus.UP, reason="syn-ack"
                          if any(p.state is PortState.OPEN for p in ps) else "reset",
                          ports=tuple(sorted(ps, key=lambda p: (p.protocol.value, p.port))))
                     for a, ps in hosts.items()]
        run = ScanRun(id=import_id("masscan", started, data), started=started,
                      finished=finished, command="masscan", scan_types=("syn",),
                      ports_spec="", targets=tuple(hosts), vantage="imported masscan "
                      + fmt, complete=True,
                      stats=Stats(hosts_total=len(hosts), hosts_up=len(hosts)),
                      extra={"imported": {"format": f"masscan-{fmt}", "scanner": "masscan"}})
        return run.with_hosts(host_objs)


def _num(v: Any, where: str) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {v!r} is not a number") from None


def _record(b: _Builder, rec: Any, where: str) -> None:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object")
    if "finished" in rec and "ip" not in rec:
        return
    ip = rec.get("ip")
    if not isinstance(ip, str):
        raise DataError(f"{where}: no \"ip\"")
    ts = _num(rec.get("timestamp"), f"{where} timestamp")
    if "rec_type" in rec:  # -oD (NDJSON): one flat record per event
        port = _num(rec.get("port"), f"{where} port")
        data = rec.get("data")
        if port is None or not isinstance(data, dict):
            raise DataError(f"{where}: record without port or data")
        proto = str(rec.get("proto", "tcp"))
        if rec["rec_type"] == "banner":
            b.banner(ip, proto, port, str(data.get("service_name", "")),
                     str(data.get("banner", "")), ts, where)
        elif rec["rec_type"] == "status":
            b.port(ip, proto, port, str(data.get("status", "open")),
                   str(data.get("reason", "")), _num(data.get("ttl"), f"{where} ttl"), ts,
                   where)
        return
    ports = rec.get("ports")
    if not isinstance(ports, list):
        raise DataError(f"{where}: no \"ports\" list")
    for p in ports:
        if not isinstance(p, dict):
            raise DataError(f"{where}: bad port entry")
        port = _num(p.get("port"), f"{where} port")
        proto = str(p.get("proto", "tcp"))
        if port is None:
            raise DataError(f"{where}: port entry without a port")
        svc = p.get("service")
        if isinstance(svc, dict):
            b.banner(ip, proto, port, str(svc.get("name", "")), str(svc.get("banner", "")),
                     ts, where)
            continue
        b.port(ip, proto, port, str(p.get("status", "open")), str(p.get("reason", "")),
               _num(p.get("ttl"), f"{where} ttl"), ts, where)


def sniff_json(head: bytes) -> bool:
    text = head.lstrip().decode("utf-8", "replace")
    return (text.startswith("[") or text.startswith("{")) and '"ip"' in text[:2000] \
        and ('"ports"' in text[:4000] or '"rec_type"' in text[:4000])


def parse_json(data: bytes) -> ScanRun:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("masscan JSON: not UTF-8 text") from None
    b = _Builder()
    stripped = text.strip()
    if stripped.startswith("["):
        body = re.sub(r",\s*(\]\s*)?$", r"\1", stripped.rstrip())  # masscan's stray comma
        if not body.endswith("]"):
            body += "]"  # interrupted scan
        try:
            records = json.loads(body)
        except ValueError:
            records = None  # cut short inside a record: read it line by line below
        if records is not None:
            if not isinstance(records, list):
                raise DataError("masscan JSON: expected a list of records")
            for i, rec in enumerate(records, 1):
                _record(b, rec, f"record {i}")
            return b.run(data, "json")
    lines = text.splitlines()
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for n, line in enumerate(lines, 1):  # NDJSON (-oD), or -oJ one record a line
        line = line.strip().rstrip(",")
        if not line or line in ("[", "]"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if n - 1 == last:
                break  # the last line of a file cut short
            raise DataError(f"masscan JSON line {n}: not valid JSON") from None
        _record(b, rec, f"line {n}")
    return b.run(data, "ndjson")


def sniff_list(head: bytes) -> bool:
    text = head.lstrip().decode("utf-8", "replace")
    if text.startswith("#masscan"):
        return True
    first = next((ln for ln in text.splitlines() if ln and not ln.startswith("#")), "")
    return bool(re.match(r"^(open|closed|banner) (tcp|udp|sctp|icmp) \d+ \S+ \d+", first))


def parse_list(data: bytes) -> ScanRun:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("masscan list: not UTF-8 text") from None
    b = _Builder()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(" ", 6)
        where = f"line {n}"
        if len(parts) < 5:
            raise DataError(f"{where}: not a masscan list line")
        kind, proto, port_s, ip, ts_s = parts[:5]
        port = _num(port_s, where)
        ts = _num(ts_s, where)
        assert port is not None
        if kind in ("open", "closed"):
            b.port(ip, proto, port, kind, "", None, ts, where)
        elif kind == "banner":
            name = parts[5] if len(parts) > 5 else ""
            b.banner(ip, proto, port, name, parts[6] if len(parts) > 6 else "", ts, where)
        else:
            raise DataError(f"{where}: unknown record type {kind!r}")
    return b.run(data, "list")


JSON_IMPORTER = Importer(name="masscan-json", description="masscan -oJ / -oD JSON",
                         sniff=sniff_json, parse=parse_json)
LIST_IMPORTER = Importer(name="masscan-list", description="masscan -oL list",
                         sniff=sniff_list, parse=parse_list)
