"""Reading a saved scan for the comparison: portscope's JSON document or nmap's XML
(``-oX``, from nmap or from portscope). Pure: text in, :class:`~portscope.model.ScanRun` out.

The XML is parsed with defusedxml (entity and DTD tricks are refused). Only what the
comparison needs is read: addresses, host status, ports with state and reason, services,
``extraports`` (with their port lists when nmap wrote them) and the scanned port scope
from ``scaninfo``. Store-wide import (issue 7) may replace this with its own importer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from portscope.errors import DataError
from portscope.model import (
    ExtraPorts,
    ExtraReason,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    canonical_address,
)

_SCAN_TYPES = {"syn": "S", "connect": "T", "udp": "U", "ack": "A", "window": "W",
               "fin": "F", "null": "N", "xmas": "X", "maimon": "M"}


def parse_scan(text: str, name: str = "scan file") -> ScanRun:
    """A scan from *text*, JSON or nmap XML (decided by the first character)."""
    head = text.lstrip()[:1]
    if head == "{":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{name}: not valid JSON ({exc})") from None
        return ScanRun.from_dict(doc)
    if head == "<":
        return parse_nmap_xml(text, name)
    raise DataError(f"{name}: neither a portscope JSON document nor nmap XML")


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _time(value: str | None) -> datetime | None:
    n = _int(value, -1)
    if n < 0:
        return None
    try:
        return datetime.fromtimestamp(n, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _state(text: str | None, where: str) -> PortState:
    try:
        return PortState(text or "")
    except ValueError:
        raise DataError(f"{where}: unknown port state {text!r}") from None


def _protocol(text: str | None) -> Protocol | None:
    try:
        return Protocol(text or "")
    except ValueError:
        return None  # sctp, ip: not compared


def _service(el: Element | None) -> Service | None:
    if el is None or not el.get("name"):
        return None
    method = el.get("method", "table")
    return Service(name=el.get("name", ""), product=el.get("product"),
                   version=el.get("version"), extrainfo=el.get("extrainfo"),
                   cpe=tuple(c.text or "" for c in el.findall("cpe")),
                   method="port-table" if method == "table" else "probe",
                   confidence=min(10, max(0, _int(el.get("conf"), 3))),
                   tunnel=el.get("tunnel"))


def _host(el: Element) -> Host | None:
    addr = None
    for a in el.findall("address"):
        if a.get("addrtype") in ("ipv4", "ipv6"):
            addr = a.get("addr")
            break
    if not addr:
        return None
    try:
        address = canonical_address(addr)
    except DataError:
        raise DataError(f"nmap XML: {addr!r} is not an IP address") from None
    where = f"host {address}"
    status_el = el.find("status")
    try:
        status = HostStatus(status_el.get("state", "unknown") if status_el is not None
                            else "unknown")
    except ValueError:
        status = HostStatus.UNKNOWN
    ports: list[PortResult] = []
    extras: list[ExtraPorts] = []
    ports_el = el.find("ports")
    if ports_el is not None:
        for p in ports_el.findall("port"):
            proto = _protocol(p.get("protocol"))
            num = _int(p.get("portid"), -1)
            st = p.find("state")
            if proto is None or not 0 <= num <= 65535 or st is None:
                continue
            ttl = _int(st.get("reason_ttl"), -1)
            ports.append(PortResult(
                port=num, protocol=proto, state=_state(st.get("state"), where),
                reason=st.get("reason", ""), ttl=ttl if 0 < ttl <= 255 else None,
                service=_service(p.find("service"))))
        for x in ports_el.findall("extraports"):
            reasons = []
            for r in x.findall("extrareasons"):
                proto = _protocol(r.get("proto") or "tcp")
                if proto is None:
                    continue
                reasons.append(ExtraReason(reason=r.get("reason", ""),
                                           count=max(0, _int(r.get("count"))),
                                           protocol=proto, ports=r.get("ports", "")))
            extras.append(ExtraPorts(state=_state(x.get("state"), where),
                                     count=max(0, _int(x.get("count"))),
                                     reasons=tuple(reasons)))
    names = tuple(h.get("name", "") for h in el.findall("hostnames/hostname") if h.get("name"))
    return Host(address=address, status=status,
                reason=status_el.get("reason", "") if status_el is not None else "",
                hostnames=names, ports=tuple(ports), extraports=tuple(extras))


def parse_nmap_xml(text: str, name: str = "nmap XML") -> ScanRun:
    """A :class:`ScanRun` from nmap's XML output (``-oX``)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(text)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise DataError(f"{name}: not well-formed XML ({exc})") from None
    if root.tag != "nmaprun":
        raise DataError(f"{name}: not nmap XML (root element <{root.tag}>)")
    spec: list[str] = []
    types: list[str] = []
    for si in root.findall("scaninfo"):
        proto = _protocol(si.get("protocol"))
        services = si.get("services", "")
        if proto is not None and services:
            spec.append(("T:" if proto is Protocol.TCP else "U:") + services)
        flag = _SCAN_TYPES.get(si.get("type", ""))
        if flag and flag not in types:
            types.append(flag)
    hosts = [h for h in (_host(el) for el in root.findall("host")) if h is not None]
    started = _time(root.get("start")) or datetime.fromtimestamp(0, UTC)
    finished_el = root.find("runstats/finished")
    finished = _time(finished_el.get("time")) if finished_el is not None else None
    complete = finished_el is not None and finished_el.get("exit", "success") == "success"
    extra: Mapping[str, Any] = {"imported_from": "nmap-xml",
                                "scanner": root.get("scanner", "")}
    return ScanRun(id=f"nmap-{root.get('start', '0')}", started=started, finished=finished,
                   command=root.get("args", ""), scan_types=tuple(types),
                   ports_spec=",".join(spec), vantage="", complete=complete,
                   hosts=tuple(hosts), extra=extra)
