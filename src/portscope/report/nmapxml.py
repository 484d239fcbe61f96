"""``xml``: nmap-compatible XML (``-oX``), for ndiff, python-libnmap, Metasploit, ivre
and XSLT.

The structure follows nmap's DTD (``nmap.dtd``, xmloutputversion 1.05) element by
element and in nmap's order: ``nmaprun`` > ``scaninfo``, ``verbose``, ``debugging``,
``host`` (``status``, ``address``, ``hostnames``, ``ports`` > ``extraports`` >
``extrareasons`` with exact ``ports``, ``port`` > ``state``, ``service`` > ``cpe``,
``script``; ``os`` > ``osmatch`` > ``osclass``; ``hostscript``), ``runstats``.

portscope's own content goes in one ``<script id="portscope" output="...">`` per port
(the banner of a detected service and the findings on that port) and one in
``<hostscript>`` (host-level findings, and findings on ports that are not listed). Its
children are an ``<elem key="banner">`` and a ``<table key="findings">`` holding one
``<table>`` per finding (id, check, severity, severity_reason, title, port, protocol,
risk, evidence, remediation, references, confidence, extra), worst first. One script,
not one per finding: nmap's ndiff 7.93-7.95 crashes on a port or hostscript with two
scripts or more (nmap/nmap#2930; its ScriptResult cannot be sorted on Python 3).
Another ndiff bug remains: its text mode crashes (``'>' not supported between
'list' and 'int'``) when only the script output of a port changed, as it does on nmap's
own NSE output; ``ndiff --xml`` handles that case.

Deliberate differences from nmap's own files: ``scanner="portscope"`` (as masscan
writes ``scanner="masscan"``; ndiff and libnmap accept it, the DTD lists only "nmap"),
no ``<times>`` element (portscope does not keep nmap's RTT variance and timeout), and
all times are UTC. A port-table guess is written ``method="table"`` without product or
version; any detection is ``method="probed"``.

Well-formed for any input: characters XML 1.0 forbids (most C0 controls, lone
surrogates, U+FFFE/U+FFFF) are written as ``\\xNN``/``\\uNNNN`` text, tab/CR/LF in
attributes as character references. Text from the network (service fields, banners,
host names) is also shown with nmap's escaping of control characters (``\\x1B``).

The document is written once, from the final run, in :meth:`XMLOutput.finish`; an
interrupted run gets ``exit="error"`` and an ``errormsg`` in ``runstats``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import ClassVar

from portscope import __version__
from portscope.model import (
    Finding,
    Host,
    OSGuess,
    PortResult,
    Protocol,
    ScanRun,
    Service,
    format_port_list,
)
from portscope.report._common import (
    display_host,
    elapsed_s,
    finding_where,
    finished_time,
    host_counts,
    printable,
    printable_lines,
    scanned_ports,
    sorted_findings,
    summary_line,
    xml_safe,
)
from portscope.report.base import Output

XML_OUTPUT_VERSION = "1.05"
SCRIPT_ID = "portscope"

_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\t": "&#x9;", "\n": "&#xa;", "\r": "&#xd;"})
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xd;"})

# run.scan_types names -> (nmap scaninfo type, protocol)
_SCAN_TYPES: dict[str, tuple[str, Protocol]] = {
    name: (name, Protocol.UDP if name == "udp" else Protocol.TCP)
    for name in ("syn", "connect", "ack", "window", "fin", "null", "xmas", "maimon", "udp")
}
# nmap's flags, case-sensitive (-sN is a NULL scan, -sn a ping scan without ports)
_SCAN_FLAGS = {"sS": "syn", "sT": "connect", "sA": "ack", "sW": "window", "sF": "fin",
               "sN": "null", "sX": "xmas", "sM": "maimon", "sU": "udp"}


def attr(value: object) -> str:
    """An attribute value, escaped and well-formed for any text."""
    return xml_safe(str(value)).translate(_ATTR_ESCAPES)


def text(value: object) -> str:
    """Character data, escaped and well-formed for any text."""
    return xml_safe(str(value)).translate(_TEXT_ESCAPES)


def comment(value: str) -> str:
    body = xml_safe(value).replace("\n", " ").replace("\r", " ")
    while "--" in body:
        body = body.replace("--", "-&#45;")  # as nmap does; "--" cannot appear in a comment
    return f"<!-- {body} -->"


def _tag(name: str, attrs: Iterable[tuple[str, object | None]], *, empty: bool = True) -> str:
    parts = [name]
    parts.extend(f'{k}="{attr(v)}"' for k, v in attrs if v is not None)
    return f"<{' '.join(parts)}{'/' if empty else ''}>"


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


def _ctime(t: datetime) -> str:
    return t.astimezone(UTC).ctime()


def scaninfo(run: ScanRun) -> list[tuple[str, Protocol]]:
    """nmap scan types of the run, in order, without repeats (unknown ones left out)."""
    out: list[tuple[str, Protocol]] = []
    for raw in run.scan_types:
        key = raw.strip().lstrip("-")
        key = _SCAN_FLAGS.get(key, key).lower()
        for prefix in ("tcp_", "tcp-", "tcp"):
            if key.startswith(prefix) and key[len(prefix):] in _SCAN_TYPES:
                key = key[len(prefix):]
                break
        found = _SCAN_TYPES.get(key)
        if found is not None and found not in out:
            out.append(found)
    return out


# --------------------------------------------------------------------------------------
# structured script output


def _scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).lower()
    return str(value)


def _structured(key: str | None, value: object, depth: int = 0) -> str:
    keyattr = [("key", key)]
    if depth < 16 and isinstance(value, Mapping):
        inner = "".join(_structured(str(k), v, depth + 1) for k, v in value.items())
        return f"{_tag('table', keyattr, empty=False)}\n{inner}</table>\n"
    if depth < 16 and isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        inner = "".join(_structured(None, v, depth + 1) for v in items)
        return f"{_tag('table', keyattr, empty=False)}\n{inner}</table>\n"
    return f"{_tag('elem', keyattr, empty=False)}{text(_scalar(value))}</elem>\n"


def finding_output(f: Finding, *, with_port: bool = False) -> list[str]:
    """The human lines of a finding: ``HIGH: title [check]`` then indented details."""
    where = f" on {finding_where(f)}" if with_port and f.port is not None else ""
    lines = [f"{f.severity.value.upper()}: {printable(f.title)} [{printable(f.check)}]{where}"]
    for label, value in (("why", f.severity_reason), ("risk", f.risk),
                         ("evidence", f.evidence), ("fix", f.remediation)):
        if value:
            first, *more = printable_lines(value)
            lines.append(f"  {label}: {first}")
            lines.extend(f"    {line}" for line in more)
    if f.references:
        lines.append("  references: " + ", ".join(printable(r) for r in f.references))
    return lines


def finding_table(f: Finding) -> str:
    """One finding as a ``<table>`` of ``<elem>``s (empty fields left out)."""
    fields: dict[str, object] = {"id": f.id, "check": f.check, "severity": f.severity.value,
                                 "severity_reason": f.severity_reason, "title": f.title}
    if f.port is not None:
        fields["port"] = f.port
        fields["protocol"] = (f.protocol or Protocol.TCP).value
    for key, value in (("risk", f.risk), ("evidence", f.evidence),
                       ("remediation", f.remediation)):
        if value:
            fields[key] = value
    if f.references:
        fields["references"] = list(f.references)
    fields["confidence"] = f.confidence
    if f.extra:
        fields["extra"] = dict(f.extra)
    body = "".join(_structured(k, v) for k, v in fields.items())
    return f"<table>\n{body}</table>\n"


def portscope_script(banner: str | None, findings: list[Finding], *,
                     with_port: bool = False) -> str:
    """The one ``<script id="portscope">`` of a port or a hostscript: the banner and the
    findings (worst first), or "" when there is neither.

    One script, not one per finding: ndiff 7.93-7.95 crashes on a port or hostscript
    with two scripts or more (nmap/nmap#2930)."""
    if not banner and not findings:
        return ""
    lines: list[str] = []
    body: list[str] = []
    if banner:
        lines.append(f"banner: {printable(banner)}")
        body.append(_structured("banner", printable(banner)))
    for f in findings:
        lines.extend(finding_output(f, with_port=with_port))
    if findings:
        inner = "".join(finding_table(f) for f in findings)
        body.append(f'<table key="findings">\n{inner}</table>\n')
    output = "\n" + "\n".join("  " + line for line in lines)
    head = _tag("script", [("id", SCRIPT_ID), ("output", output)], empty=False)
    return f"{head}{''.join(body)}</script>"


# --------------------------------------------------------------------------------------
# elements


def service_element(svc: Service) -> str:
    extra = svc.extra
    detected = svc.detected
    def shown(value: object) -> str | None:
        return printable(value) if detected and isinstance(value, str) and value else None

    attrs: list[tuple[str, object | None]] = [
        ("name", printable(svc.name)),
        ("product", shown(svc.product)),
        ("version", shown(svc.version)),
        ("extrainfo", shown(svc.extrainfo)),
    ]
    attrs.extend((key, shown(extra.get(key))) for key in ("hostname", "ostype", "devicetype"))
    attrs += [
        ("tunnel", "ssl" if svc.tunnel in ("ssl", "tls") else None),
        ("method", "probed" if detected else "table"),
        ("conf", min(10, max(0, int(svc.confidence)))),
    ]
    cpes = [f"<cpe>{text(printable(c))}</cpe>" for c in svc.cpe if c] if detected else []
    if not cpes:
        return _tag("service", attrs)
    return f"{_tag('service', attrs, empty=False)}{''.join(cpes)}</service>"


def port_element(p: PortResult, findings: list[Finding]) -> str:
    parts = [_tag("port", [("protocol", p.protocol.value), ("portid", p.port)], empty=False),
             _tag("state", [("state", p.state.value), ("reason", p.reason),
                            ("reason_ttl", p.ttl if p.ttl is not None else 0)])]
    svc = p.service
    if svc is not None:
        parts.append(service_element(svc))
    banner = svc.banner if svc is not None and svc.detected else None
    parts.append(portscope_script(banner, findings))
    parts.append("</port>\n")
    return "".join(parts)


def os_element(os: OSGuess) -> str:
    out = [_tag("os", [], empty=False), "\n",
           _tag("osmatch", [("name", os.name), ("accuracy", os.accuracy), ("line", 0)],
                empty=False), "\n"]
    cpe = [c for c in os.cpe if c]  # libnmap fails on an empty <cpe/>
    if os.family or os.vendor or cpe:
        cls_attrs: list[tuple[str, object | None]] = [
            ("vendor", os.vendor or os.family or ""),
            ("osfamily", os.family or os.vendor or ""),
            ("accuracy", os.accuracy),
        ]
        cpes = "".join(f"<cpe>{text(printable(c))}</cpe>" for c in cpe)
        out.append(f"{_tag('osclass', cls_attrs, empty=False)}{cpes}</osclass>\n")
    out.append("</osmatch>\n</os>\n")
    return "".join(out)


def host_element(host: Host) -> str:
    h = display_host(host)
    listed = {p.key for p in h.ports}
    by_port: dict[tuple[str, int], list[Finding]] = {}
    host_level: list[Finding] = []
    for f in sorted_findings(h.findings):
        key = ((f.protocol or Protocol.TCP).value, f.port) if f.port is not None else None
        if key is not None and key in listed:
            by_port.setdefault(key, []).append(f)
        else:
            host_level.append(f)

    addrtype = "ipv4"
    try:
        if ipaddress.ip_address(h.address).version == 6:
            addrtype = "ipv6"
    except ValueError:
        pass
    out = ["<host>",
           _tag("status", [("state", h.status.value), ("reason", h.reason),
                           ("reason_ttl", 0)]), "\n",
           _tag("address", [("addr", h.address), ("addrtype", addrtype)]), "\n"]
    if h.mac:
        vendor = h.extra.get("mac_vendor")
        out += [_tag("address", [("addr", h.mac), ("addrtype", "mac"),
                                 ("vendor", vendor if isinstance(vendor, str) else None)]), "\n"]
    out.append("<hostnames>\n")
    out.extend(_tag("hostname", [("name", printable(n)), ("type", "PTR")]) + "\n"
               for n in h.hostnames)
    out.append("</hostnames>\n")
    if h.ports or h.extraports:
        out.append("<ports>")
        for g in h.extraports:
            out += [_tag("extraports", [("state", g.state.value), ("count", g.count)],
                         empty=False), "\n"]
            out.extend(_tag("extrareasons", [("reason", r.reason), ("count", r.count),
                                             ("proto", r.protocol.value),
                                             ("ports", r.ports)]) + "\n" for r in g.reasons)
            out.append("</extraports>\n")
        out.extend(port_element(p, by_port.get(p.key, [])) for p in h.ports)
        out.append("</ports>\n")
    if h.os is not None:
        out.append(os_element(h.os))
    if host_level:
        out += ["<hostscript>", portscope_script(None, host_level, with_port=True),
                "</hostscript>\n"]
    out.append("</host>\n")
    return "".join(out)


def render_xml(run: ScanRun) -> str:
    """The whole nmap-style XML document for *run*."""
    return "".join(iter_xml(run))


def iter_xml(run: ScanRun) -> Iterator[str]:
    """:func:`render_xml` in pieces, one host element at a time (memory does not grow with
    the number of hosts)."""
    started = run.started
    command = run.command or "portscope"
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', "<!DOCTYPE nmaprun>\n",
           comment(f"portscope {__version__} scan initiated {_ctime(started)} as: {command}"),
           "\n",
           _tag("nmaprun", [("scanner", "portscope"), ("args", command),
                            ("start", _epoch(started)), ("startstr", _ctime(started)),
                            ("version", __version__),
                            ("xmloutputversion", XML_OUTPUT_VERSION)], empty=False), "\n"]
    ports = scanned_ports(run)
    for scan_type, proto in scaninfo(run):
        nums = ports.get(proto, [])
        out += [_tag("scaninfo", [("type", scan_type), ("protocol", proto.value),
                                  ("numservices", len(nums)),
                                  ("services", format_port_list(nums))]), "\n"]
    out.append('<verbose level="0"/>\n<debugging level="0"/>\n')
    yield "".join(out)
    for h in run.hosts:
        yield host_element(h)

    end = finished_time(run)
    total, up = host_counts(run)
    summary = f"portscope done at {_ctime(end)}; {summary_line(run)}"
    finished_attrs: list[tuple[str, object | None]] = [
        ("time", _epoch(end)), ("timestr", _ctime(end)), ("summary", summary),
        ("elapsed", f"{elapsed_s(run):.2f}"),
        ("exit", "success" if run.complete else "error"),
        ("errormsg", None if run.complete else "scan interrupted: results are incomplete"),
    ]
    yield "".join(["<runstats>", _tag("finished", finished_attrs),
                   _tag("hosts", [("up", up), ("down", total - up), ("total", total)]),
                   "\n</runstats>\n</nmaprun>\n"])


class XMLOutput(Output):
    name: ClassVar[str] = "xml"

    def finish(self, run: ScanRun) -> None:
        for piece in iter_xml(run):
            if not self.unicode_ok:
                piece = piece.encode("ascii", "xmlcharrefreplace").decode("ascii")
            self.write(piece)


__all__ = ["XMLOutput", "iter_xml", "render_xml"]
