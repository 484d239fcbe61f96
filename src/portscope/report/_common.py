"""Helpers shared by the output formats: safe text, port ordering, display collapsing,
labels and run totals. Pure functions, no I/O."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from portscope.model import (
    DEFAULT_COLLAPSE_THRESHOLD,
    ExtraPorts,
    ExtraReason,
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
    collapse_ports,
    format_port_list,
    iter_port_list,
    sort_ports,
)

# --------------------------------------------------------------------------------------
# text safety

# Characters never written raw to a terminal or a text report: C0/C1 controls and DEL,
# bidirectional overrides and other invisible formatting that can disguise text, line
# and paragraph separators, BOM, lone surrogates (undecodable bytes) and non-characters.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufeff\ufffe\uffff]"
)

# Characters XML 1.0 forbids anywhere in a document (Char production, section 2.2);
# compiled when first used (the negated class costs ~10 ms to compile, and only the XML
# and HTML formats need it)
_XML_ILLEGAL_PATTERN = "[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


@functools.cache
def _xml_illegal() -> re.Pattern[str]:
    return re.compile(_XML_ILLEGAL_PATTERN)


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte smuggled in by the surrogateescape error handler
        return f"\\x{c - 0xDC00:02X}"
    if c <= 0xFF:
        return f"\\x{c:02X}"
    return f"\\u{c:04X}"


def printable(text: str) -> str:
    """*text* with every control or deceptive character written as ``\\xNN``/``\\uNNNN``,
    the way nmap shows banners (``\\x0D\\x0A``). Safe to print on a terminal."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(_escape_char, text)


def printable_lines(text: str) -> list[str]:
    """Multi-line *text* as a list of :func:`printable` lines (CR LF, CR, LF split)."""
    return [printable(line) for line in text.replace("\r\n", "\n").replace("\r", "\n")
            .split("\n")]


def xml_safe(text: str) -> str:
    """*text* with the characters XML 1.0 cannot carry written as ``\\xNN``/``\\uNNNN``
    (everything else, including tab and newline, is kept)."""
    illegal = _xml_illegal()
    if illegal.search(text) is None:
        return text
    return illegal.sub(_escape_char, text)


_JSON_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_clean(value: Any) -> Any:
    """Replace what JSON cannot carry: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def json_dumps(obj: Any, *, ascii_only: bool = False, indent: int | None = None) -> str:
    """Strict JSON text for *obj*, for any content: NaN/Infinity become null, unknown
    types their text, lone surrogates and (in non-ASCII mode) U+2028/U+2029/U+0085 are
    escaped so that every line splitter sees the same lines."""
    separators = (",", ": ") if indent is not None else (",", ":")
    try:
        text = json.dumps(obj, ensure_ascii=ascii_only, allow_nan=False, indent=indent,
                          separators=separators, default=_json_default)
    except ValueError:
        text = json.dumps(_json_clean(obj), ensure_ascii=ascii_only, allow_nan=False,
                          indent=indent, separators=separators, default=_json_default)
    if ascii_only:
        return text
    # lone surrogates (undecodable bytes) cannot be encoded as UTF-8: write them as JSON
    # escapes, which read back as the same characters (they only occur inside strings)
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.translate(_JSON_LINE_BREAKS)


# --------------------------------------------------------------------------------------
# ports


def port_sort_key(p: PortResult) -> tuple[str, int]:
    """Ports are listed by protocol, then number."""
    return (p.protocol.value, p.port)


def sorted_ports(ports: Iterable[PortResult]) -> list[PortResult]:
    return sort_ports(ports)


def _merge_extraports(groups: Iterable[ExtraPorts]) -> tuple[ExtraPorts, ...]:
    """One group per state (ndiff rejects duplicate states), reasons merged by
    (reason, protocol), biggest first."""
    by_state: dict[PortState, tuple[int, dict[tuple[str, Protocol], list[int]], list[int]]] = {}
    for g in groups:
        count, reasons, loose = by_state.setdefault(g.state, (0, {}, []))
        listed = 0
        for r in g.reasons:
            ports = list(iter_port_list(r.ports))
            reasons.setdefault((r.reason, r.protocol), []).extend(ports)
            listed += r.count
        if listed < g.count:
            loose.append(g.count - listed)  # ports counted but not itemised
        by_state[g.state] = (count + g.count, reasons, loose)
    out: list[ExtraPorts] = []
    for state, (count, reasons, _loose) in by_state.items():
        items = [ExtraReason(reason=r, count=len(set(nums)), protocol=proto,
                             ports=format_port_list(nums))
                 for (r, proto), nums in reasons.items()]
        items.sort(key=lambda e: (-e.count, e.protocol.value, e.reason))
        out.append(ExtraPorts(state=state, count=count, reasons=tuple(items)))
    out.sort(key=lambda g: -g.count)
    return tuple(out)


def _detected(p: PortResult) -> bool:
    return p.service is not None and p.service.detected


def display_host(host: Host, threshold: int = DEFAULT_COLLAPSE_THRESHOLD) -> Host:
    """*host* as the human and nmap formats show it: big groups of uninteresting ports
    in ``extraports`` (one group per state), the rest listed in protocol/port order.
    For display, a non-open port is summarised even if it carries a TTL or a port-table
    guess (the model keeps those listed so that JSON loses nothing); only a detected
    service keeps it listed."""
    if threshold < 0:
        keep, extras = list(host.ports), list[ExtraPorts]()
    else:
        keep, extras = collapse_ports(host.ports, threshold, _detected)
    if host.extraports:
        merged = _merge_extraports((*host.extraports, *extras))
    else:  # one group per state already: only the order of the merge
        merged = tuple(sorted(
            (replace(g, reasons=tuple(sorted(
                g.reasons, key=lambda e: (-e.count, e.protocol.value, e.reason))))
             for g in extras), key=lambda g: -g.count))
    return replace(host, ports=tuple(sorted_ports(keep)), extraports=merged)


def scanned_ports(run: ScanRun) -> dict[Protocol, list[int]]:
    """The ports scanned per protocol, from ``run.ports_spec`` (``T:1-1024,U:53``; ports
    without a prefix count for every protocol), else from the results."""
    spec = _parse_ports_spec(run.ports_spec)
    if spec is not None:
        return spec
    seen: dict[Protocol, set[int]] = {}
    for h in run.hosts:
        for p in h.ports:
            seen.setdefault(p.protocol, set()).add(p.port)
        for g in h.extraports:
            for r in g.reasons:
                seen.setdefault(r.protocol, set()).update(iter_port_list(r.ports))
    return {proto: sorted(nums) for proto, nums in seen.items()}


def _parse_ports_spec(spec: str) -> dict[Protocol, list[int]] | None:
    if not spec.strip():
        return None
    out: dict[Protocol, set[int]] = {}
    current: tuple[Protocol, ...] = (Protocol.TCP, Protocol.UDP)
    for raw in spec.split(","):
        token = raw.strip()
        if not token:
            continue
        prefix, sep, rest = token.partition(":")
        if sep:
            p = prefix.upper()
            if p == "T":
                current = (Protocol.TCP,)
            elif p == "U":
                current = (Protocol.UDP,)
            else:
                current = ()  # SCTP, IP protocols: not ours
            token = rest.strip()
        a, dash, b = token.partition("-")
        try:
            lo = int(a) if a else 1
            hi = (int(b) if b else 65535) if dash else lo
        except ValueError:
            return None
        if not 0 <= lo <= hi <= 65535:
            return None
        for proto in current:
            out.setdefault(proto, set()).update(range(lo, hi + 1))
    return {proto: sorted(nums) for proto, nums in out.items()}


# --------------------------------------------------------------------------------------
# labels


def service_label(svc: Service | None) -> str:
    """The SERVICE column: nmap's ``ssl/http`` for a service inside TLS, ``unknown``
    when nothing is known."""
    if svc is None or not svc.name:
        return "unknown"
    name = printable(svc.name)
    if svc.tunnel in ("ssl", "tls"):
        return "ssl/http" if name == "https" else f"ssl/{name}"  # as nmap shows it
    return name


def version_label(svc: Service | None) -> str:
    """The VERSION column: product, version and (extra info) of a *detected* service;
    empty for a port-table guess, which is never shown as a detection."""
    if svc is None or not svc.detected:
        return ""
    parts = [printable(x) for x in (svc.product, svc.version) if x]
    if svc.extrainfo:
        parts.append(f"({printable(svc.extrainfo)})")
    return " ".join(parts)


def reason_label(p: PortResult) -> str:
    """The REASON column: ``syn-ack``, ``reset ttl 64`` ..."""
    reason = printable(p.reason)
    return f"{reason} ttl {p.ttl}" if p.ttl is not None and reason else reason


def host_title(host: Host) -> str:
    """``ADDR (name)`` or ``ADDR``."""
    if host.hostnames:
        return f"{host.address} ({printable(host.hostnames[0])})"
    return host.address


def latency_label(host: Host) -> str:
    """nmap's ``0.00039s`` (two significant digits)."""
    if host.rtt_ms is None or not math.isfinite(host.rtt_ms):
        return ""
    return f"{host.rtt_ms / 1000:.2g}s"


def status_line(host: Host) -> str:
    """``Host is up, received syn-ack (0.00012s latency).``"""
    reason = printable(host.reason)
    latency = latency_label(host)
    if host.status is HostStatus.UP:
        text = "Host is up"
        if reason:
            text += f", received {reason}"
        if latency:
            text += f" ({latency} latency)"
        return text + "."
    if host.status is HostStatus.DOWN:
        return f"Host is down, received {reason}." if reason else "Host is down."
    return f"Host status is unknown, received {reason}." if reason else "Host status is unknown."


def not_shown(host: Host) -> str:
    """``995 closed tcp ports (conn-refused), 3 filtered tcp ports (no-response)`` for a
    host from :func:`display_host`; empty when every port is listed."""
    parts: list[str] = []
    for g in host.extraports:
        if not g.reasons:
            parts.append(f"{g.count} {g.state.value} port{'' if g.count == 1 else 's'}")
            continue
        for r in g.reasons:
            noun = "port" if r.count == 1 else "ports"
            text = f"{r.count} {g.state.value} {r.protocol.value} {noun}"
            if r.reason:
                text += f" ({printable(r.reason)})"
            parts.append(text)
    return ", ".join(parts)


def extraports_total(host: Host) -> int:
    return sum(g.count for g in host.extraports)


# --------------------------------------------------------------------------------------
# findings


def finding_sort_key(f: Finding) -> tuple[int, int, str, int, str]:
    """Worst first, then host-level before port-level, then protocol/port, then id."""
    has_port = 0 if f.port is None else 1
    proto = f.protocol.value if f.protocol is not None else ""
    return (-f.severity.rank, has_port, proto, f.port or 0, f.id)


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=finding_sort_key)


def severity_counts(findings: Sequence[Finding]) -> str:
    """``1 high, 2 medium`` (worst first; zero counts left out)."""
    counts = {s: 0 for s in sorted(Severity, key=lambda s: -s.rank)}
    for f in findings:
        counts[f.severity] += 1
    return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)


def finding_where(f: Finding) -> str:
    """``23/tcp`` or ``-`` for a host-level finding."""
    if f.port is None:
        return "-"
    return f"{f.port}/{(f.protocol or Protocol.TCP).value}"


# --------------------------------------------------------------------------------------
# run totals and times


def host_counts(run: ScanRun) -> tuple[int, int]:
    """(IP addresses scanned, hosts up): the larger of what the stats say and what the
    run lists, so both a run with only up hosts and a run listing everything add up."""
    listed_up = sum(1 for h in run.hosts if h.status is HostStatus.UP)
    total = max(run.stats.hosts_total, len(run.hosts))
    up = min(max(run.stats.hosts_up, listed_up), total) if total else 0
    return total, up


def elapsed_s(run: ScanRun) -> float:
    """Seconds the run took: the stats' duration, else finished - started."""
    if run.stats.duration_s > 0 and math.isfinite(run.stats.duration_s):
        return run.stats.duration_s
    if run.finished is not None:
        return max(0.0, (run.finished - run.started).total_seconds())
    return 0.0


def finished_time(run: ScanRun) -> datetime:
    """When the run ended (started + elapsed when it does not say)."""
    if run.finished is not None:
        return run.finished
    return run.started + timedelta(seconds=elapsed_s(run))


def summary_line(run: ScanRun) -> str:
    """``1 IP address (1 host up) scanned in 1.79 seconds`` (nmap's wording)."""
    total, up = host_counts(run)
    addresses = "IP address" if total == 1 else "IP addresses"
    hosts = "host" if up == 1 else "hosts"
    return f"{total} {addresses} ({up} {hosts} up) scanned in {elapsed_s(run):.2f} seconds"
