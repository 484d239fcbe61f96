"""nmap XML (``nmap -oX``, and masscan's and portscope's own ``-oX``), parsed with
defusedxml: the file is untrusted input (no entity expansion, no external resources).

Everything nmap's DTD says about hosts and ports is kept: status and reason, addresses
(IPv4/IPv6/MAC), host names, every port with state, reason and TTL, the service (name,
product, version, extrainfo, tunnel, method, conf, CPEs), ``<extraports>`` expanded to
ports when nmap lists them (``<extrareasons ports=...>``, nmap >= 7.80) and kept as
counts otherwise, the best OS match, and script output (``service.extra["scripts"]``).
portscope's own ``<script id="portscope">`` gives back banners and findings, so
portscope -> XML -> portscope keeps them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only for the Element type; parsing is defusedxml's
from datetime import UTC, datetime
from typing import Any

from portscope.errors import DataError
from portscope.importers.base import Importer, import_id
from portscope.model import (
    ExtraPorts,
    ExtraReason,
    Finding,
    Host,
    HostStatus,
    OSGuess,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Stats,
    iter_port_list,
)
from portscope.model.core import normalize_address

_SCAN_TYPES = {"syn": "syn", "connect": "connect", "ack": "ack", "window": "window",
               "fin": "fin", "null": "null", "xmas": "xmas", "maimon": "maimon",
               "udp": "udp", "sctpinit": "sctp-init"}
MAX_PORTS_PER_HOST = 2 * 65536


def sniff(head: bytes) -> bool:
    text = head.lstrip()[:512].decode("utf-8", "replace")
    return (text.startswith("<?xml") and "<nmaprun" in head.decode("utf-8", "replace")) \
        or text.startswith("<nmaprun") or "<!DOCTYPE nmaprun" in text


def _int(value: str | None, where: str, *, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{where}: {value!r} is not a number") from None


def _time(value: str | None) -> datetime | None:
    n = _int(value, "time")
    return datetime.fromtimestamp(n, UTC) if n else None


def _state(value: str | None, where: str) -> PortState:
    try:
        return PortState(value or "")
    except ValueError:
        raise DataError(f"{where}: unknown port state {value!r}") from None


def _protocol(value: str | None, where: str) -> Protocol | None:
    if value in ("tcp", "udp"):
        return Protocol(value)
    if value in ("sctp", "ip"):
        return None  # not in portscope's model: skipped
    raise DataError(f"{where}: unknown protocol {value!r}")


def _elems(el: ET.Element) -> Any:
    """nmap's structured script output (``<table>``/``<elem>``) as Python values."""
    keyed = all(child.get("key") is not None for child in el)
    if keyed and len(el):
        return {str(child.get("key")): (_elems(child) if child.tag == "table"
                                        else child.text or "") for child in el}
    return [(_elems(child) if child.tag == "table" else child.text or "") for child in el]


def _findings(script: ET.Element, where: str) -> list[Finding]:
    out = []
    for table in script.findall("table"):
        if table.get("key") != "findings":
            continue
        for ft in table.findall("table"):
            d = _elems(ft)
            if not isinstance(d, dict):
                continue
            for k in ("port", "confidence"):
                if k in d:
                    d[k] = _int(str(d[k]), f"{where} finding {k}")
            out.append(Finding.from_dict(d, f"{where} finding"))
    return out


def _service(el: ET.Element | None, scripts: dict[str, str], banner: str | None
             ) -> Service | None:
    if el is None:
        if not scripts:
            return None
        return Service(name="unknown", extra={"scripts": scripts})
    detected = el.get("method") == "probed"
    extra: dict[str, Any] = {k: el.get(k) for k in ("hostname", "ostype", "devicetype")
                             if el.get(k)}
    if scripts:
        extra["scripts"] = scripts
    conf = _int(el.get("conf"), "service conf", default=3 if not detected else 10) or 0
    return Service(
        name=el.get("name") or "unknown",
        product=el.get("product"), version=el.get("version"), extrainfo=el.get("extrainfo"),
        cpe=tuple(c.text or "" for c in el.findall("cpe") if c.text),
        banner=banner, method="probe" if detected else "port-table",
        confidence=max(0, min(10, conf)), tunnel=el.get("tunnel"), extra=extra)


def _host(h: ET.Element, n: int) -> Host | None:
    where = f"host {n}"
    address = None
    mac = None
    vendor = None
    for a in h.findall("address"):
        kind = a.get("addrtype")
        if kind in ("ipv4", "ipv6") and address is None:
            address = a.get("addr")
        elif kind == "mac":
            mac, vendor = a.get("addr"), a.get("vendor")
    if not address:
        return None
    address = normalize_address(address)
    where = f"host {address}"
    st = h.find("status")
    status = HostStatus.UNKNOWN
    reason = ""
    if st is not None:
        status = {"up": HostStatus.UP, "down": HostStatus.DOWN}.get(st.get("state", ""),
                                                                    HostStatus.UNKNOWN)
        reason = st.get("reason", "")
    hostnames = tuple(dict.fromkeys(hn.get("name", "") for hn in h.iter("hostname")
                                    if hn.get("name")))
    ports: dict[tuple[str, int], PortResult] = {}
    extraports: list[ExtraPorts] = []
    findings: list[Finding] = []
    ports_el = h.find("ports")
    if ports_el is not None:
        for ex in ports_el.findall("extraports"):
            state = _state(ex.get("state"), f"{where} extraports")
            unlisted: list[ExtraReason] = []
            for er in ex.findall("extrareasons"):
                proto = _protocol(er.get("proto", "tcp"), f"{where} extrareasons")
                if proto is None:
                    continue
                spec = er.get("ports")
                if not spec:
                    unlisted.append(ExtraReason(reason=er.get("reason", ""), count=_int(
                        er.get("count"), f"{where} extrareasons count", default=0) or 0,
                        protocol=proto, ports=""))
                    continue
                try:
                    numbers = list(iter_port_list(spec))
                except ValueError:
                    raise DataError(f"{where}: bad extrareasons ports {spec!r}") from None
                if len(ports) + len(numbers) > MAX_PORTS_PER_HOST:
                    raise DataError(f"{where}: more ports than exist")
                for number in numbers:
                    if not 0 <= number <= 65535:
                        raise DataError(f"{where}: port {number} out of range")
                    ports[(proto.value, number)] = PortResult(
                        port=number, protocol=proto, state=state, reason=er.get("reason", ""))
            if unlisted or not ex.findall("extrareasons"):
                count = _int(ex.get("count"), f"{where} extraports count", default=0) or 0
                listed = sum(int(r.count) for r in unlisted)
                if unlisted or count:
                    extraports.append(ExtraPorts(state=state, count=max(count, listed),
                                                 reasons=tuple(unlisted)))
        for p in ports_el.findall("port"):
            proto = _protocol(p.get("protocol"), f"{where} port")
            portid = _int(p.get("portid"), f"{where} portid")
            if proto is None or portid is None:
                continue
            number = portid
            if not 0 <= number <= 65535:
                raise DataError(f"{where}: port {number} out of range")
            st_el = p.find("state")
            if st_el is None:
                raise DataError(f"{where} port {number}: no <state>")
            scripts: dict[str, str] = {}
            banner = None
            for sc in p.findall("script"):
                sid = sc.get("id", "")
                if sid == "portscope":
                    for elem in sc.findall("elem"):
                        if elem.get("key") == "banner":
                            banner = elem.text or ""
                    findings.extend(_findings(sc, f"{where} port {number}"))
                else:
                    scripts[sid] = sc.get("output", "")
            ttl = _int(st_el.get("reason_ttl"), f"{where} reason_ttl")
            ports[(proto.value, number)] = PortResult(
                port=number, protocol=proto, state=_state(st_el.get("state"), where),
                reason=st_el.get("reason", ""),
                ttl=ttl if ttl and 0 < ttl <= 255 else None,
                service=_service(p.find("service"), scripts, banner))
    host_scripts: dict[str, str] = {}
    hs = h.find("hostscript")
    if hs is not None:
        for sc in hs.findall("script"):
            if sc.get("id") == "portscope":
                findings.extend(_findings(sc, f"{where} hostscript"))
            else:
                host_scripts[sc.get("id", "")] = sc.get("output", "")
    os_guess = None
    osmatch = h.find("os/osmatch")
    if osmatch is not None and osmatch.get("name"):
        osclass = osmatch.find("osclass")
        os_guess = OSGuess(
            name=osmatch.get("name", ""),
            accuracy=max(0, min(100, _int(osmatch.get("accuracy"), f"{where} os accuracy",
                                          default=0) or 0)),
            family=osclass.get("osfamily") if osclass is not None else None,
            vendor=osclass.get("vendor") if osclass is not None else None,
            cpe=tuple(c.text or "" for c in osmatch.iter("cpe") if c.text))
    extra: dict[str, Any] = {}
    if host_scripts:
        extra["scripts"] = host_scripts
    if vendor:
        extra["mac_vendor"] = vendor
    rtt = None
    times = h.find("times")
    if times is not None and times.get("srtt"):
        srtt = _int(times.get("srtt"), f"{where} srtt")
        rtt = srtt / 1000.0 if srtt is not None and srtt >= 0 else None
    return Host(address=address, status=status, reason=reason, hostnames=hostnames,
                ports=tuple(sorted(ports.values(), key=lambda p: (p.protocol.value, p.port))),
                extraports=tuple(extraports), os=os_guess, findings=tuple(findings), mac=mac,
                rtt_ms=rtt, extra=extra)


def parse(data: bytes) -> ScanRun:
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        root = DET.fromstring(data)
    except DefusedXmlException as exc:
        raise DataError(f"refused nmap XML: {exc.__class__.__name__} (entities or external "
                        f"references are not allowed)") from None
    except ET.ParseError as exc:
        raise DataError(f"not well-formed XML: {exc}") from None
    if root.tag != "nmaprun":
        raise DataError(f"not nmap XML (root element <{root.tag}>, expected <nmaprun>)")
    scanner = root.get("scanner") or "nmap"
    started = _time(root.get("start")) or datetime.fromtimestamp(0, UTC)
    scan_types: list[str] = []
    spec: dict[str, list[str]] = {}
    for si in root.findall("scaninfo"):
        kind = si.get("type", "")
        name = _SCAN_TYPES.get(kind, kind)
        if name and name not in scan_types:
            scan_types.append(name)
        proto = si.get("protocol", "")
        services = si.get("services", "")
        if proto in ("tcp", "udp") and services:
            spec.setdefault(proto, []).append(services)
    ports_spec = ",".join(f"{p[0].upper()}:{','.join(v)}" for p, v in spec.items())
    hosts: dict[str, Host] = {}
    for n, h in enumerate(root.iter("host"), 1):
        host = _host(h, n)
        if host is not None:
            hosts.setdefault(host.address, host)
    finished_el = root.find("runstats/finished")
    finished = _time(finished_el.get("time")) if finished_el is not None else None
    complete = finished_el is not None and finished_el.get("exit", "success") != "error"
    elapsed = finished_el.get("elapsed") if finished_el is not None else None
    try:
        duration = float(elapsed) if elapsed else 0.0
    except ValueError:
        duration = 0.0
    up = sum(1 for h in hosts.values() if h.status is HostStatus.UP)
    run = ScanRun(
        id=import_id(scanner if scanner.isalnum() else "nmap", started, data),
        started=started, finished=finished, command=root.get("args", ""),
        scan_types=tuple(scan_types), ports_spec=ports_spec,
        targets=tuple(hosts), vantage=f"imported {scanner} XML", complete=complete,
        stats=Stats(duration_s=duration, hosts_total=len(hosts), hosts_up=up),
        extra={"imported": {"format": "xml", "scanner": scanner,
                            "version": root.get("version", "")}})
    return run.with_hosts(hosts.values())


IMPORTER = Importer(name="xml", description="nmap XML (nmap, masscan or portscope -oX)",
                    sniff=sniff, parse=parse)
