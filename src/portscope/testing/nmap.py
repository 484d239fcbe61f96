"""Run nmap and read its XML: the reference that lab tests and benchmarks compare against.

Only ever point it at lab hosts (198.18.0.0/15, 2001:db8::/32) or 127.0.0.1 servers a test
started itself.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from portscope.errors import DataError, PortscopeError


@dataclass(frozen=True)
class NmapPort:
    port: int
    protocol: str
    state: str
    reason: str
    reason_ttl: int | None = None


@dataclass(frozen=True)
class NmapHost:
    address: str
    status: str
    ports: tuple[NmapPort, ...]

    def state(self, port: int, protocol: str = "tcp") -> NmapPort | None:
        for p in self.ports:
            if p.port == port and p.protocol == protocol:
                return p
        return None

    def states(self, protocol: str = "tcp") -> dict[int, tuple[str, str]]:
        """``{port: (state, reason)}`` for one protocol."""
        return {p.port: (p.state, p.reason) for p in self.ports if p.protocol == protocol}


def _expand_ports(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_nmap_xml(text: str) -> list[NmapHost]:
    """Hosts and ports of an nmap ``-oX`` document. Ports folded into ``<extraports>`` are
    expanded when nmap lists them (``<extrareasons ports=...>``, nmap >= 7.80)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise DataError(f"not nmap XML: {exc}") from None
    hosts: list[NmapHost] = []
    for host in root.iter("host"):
        addr_el = next(
            (a for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")), None
        )
        status_el = host.find("status")
        ports: list[NmapPort] = []
        ports_el = host.find("ports")
        if ports_el is not None:
            for extra in ports_el.iter("extraports"):
                state = extra.get("state", "")
                for er in extra.iter("extrareasons"):
                    spec = er.get("ports")
                    if not spec:
                        continue
                    for number in _expand_ports(spec):
                        ports.append(
                            NmapPort(number, er.get("proto", "tcp"), state, er.get("reason", ""))
                        )
            for p in ports_el.iter("port"):
                st = p.find("state")
                if st is None:
                    continue
                ttl = st.get("reason_ttl")
                ports.append(
                    NmapPort(
                        port=int(p.get("portid", "0")),
                        protocol=p.get("protocol", ""),
                        state=st.get("state", ""),
                        reason=st.get("reason", ""),
                        reason_ttl=int(ttl) if ttl is not None else None,
                    )
                )
        hosts.append(
            NmapHost(
                address=addr_el.get("addr", "") if addr_el is not None else "",
                status=status_el.get("state", "") if status_el is not None else "",
                ports=tuple(sorted(ports, key=lambda p: (p.protocol, p.port))),
            )
        )
    return hosts


def nmap_path() -> str | None:
    return shutil.which("nmap")


def run_nmap(args: Sequence[str], *, timeout: float = 300.0) -> list[NmapHost]:
    """Run ``nmap <args> -oX -`` and parse the result (raises on a failed run)."""
    exe = nmap_path()
    if exe is None:
        raise PortscopeError("nmap is not installed (Debian package nmap)")
    cmd = [exe, *args, "-oX", "-"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode != 0:
        raise PortscopeError(f"nmap failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return parse_nmap_xml(proc.stdout)


@dataclass(frozen=True)
class NmapService:
    """What ``nmap -sV`` said about one port (``<service>`` in its XML)."""

    port: int
    protocol: str
    state: str
    name: str
    product: str
    version: str
    extrainfo: str
    tunnel: str
    method: str
    conf: int


def nmap_services(text: str) -> dict[tuple[str, int], NmapService]:
    """``{(protocol, port): NmapService}`` of the listed ports of an nmap ``-oX`` document."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise DataError(f"not nmap XML: {exc}") from None
    out: dict[tuple[str, int], NmapService] = {}
    for p in root.iter("port"):
        st = p.find("state")
        svc = p.find("service")
        key = (p.get("protocol", ""), int(p.get("portid", "0")))
        attrs = svc.attrib if svc is not None else {}
        out[key] = NmapService(
            port=key[1], protocol=key[0], state=st.get("state", "") if st is not None else "",
            name=attrs.get("name", ""), product=attrs.get("product", ""),
            version=attrs.get("version", ""), extrainfo=attrs.get("extrainfo", ""),
            tunnel=attrs.get("tunnel", ""), method=attrs.get("method", ""),
            conf=int(attrs.get("conf", "0")))
    return out
