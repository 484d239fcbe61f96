"""Write sample_run.json, the input of the report golden tests.

Run from the repository root: ``python tests/data/report/make_sample.py``. The file is
stored collapsed (``collapse_host``); tests expand it, so the formats see a scan as it
is in memory: every decided port listed. Addresses are documentation ranges; nothing
here was scanned.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from portscope.model import (
    Finding,
    Host,
    HostStatus,
    OSGuess,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
    Stats,
    collapse_host,
)

TCP, UDP = Protocol.TCP, Protocol.UDP


def closed(port: int) -> PortResult:
    return PortResult(port, TCP, PortState.CLOSED, "reset")


def filtered(port: int) -> PortResult:
    return PortResult(port, TCP, PortState.FILTERED, "no-response")


def build() -> ScanRun:
    gw_special = {
        22: PortResult(22, TCP, PortState.OPEN, "syn-ack", ttl=64, service=Service(
            name="ssh", product="OpenSSH", version="8.9p1 Ubuntu 3ubuntu0.1",
            extrainfo="Ubuntu Linux; protocol 2.0",
            cpe=("cpe:/a:openbsd:openssh:8.9p1",),
            banner="SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1\r\n", method="probe",
            confidence=10, extra={"ostype": "Linux"})),
        23: PortResult(23, TCP, PortState.OPEN, "syn-ack", ttl=64,
                       service=Service(name="telnet")),
        # a closed port with a port-table guess and a TTL: kept listed by collapse_host
        # (JSON), summarised by the display formats
        25: PortResult(25, TCP, PortState.CLOSED, "reset", ttl=64,
                       service=Service(name="smtp")),
        80: PortResult(80, TCP, PortState.OPEN, "syn-ack", ttl=64, service=Service(
            name="http", product="nginx", version="1.24.0", cpe=("cpe:/a:nginx:nginx:1.24.0",),
            method="probe", confidence=10)),
        443: PortResult(443, TCP, PortState.OPEN, "syn-ack", ttl=64, service=Service(
            name="http", product="nginx", tunnel="ssl", method="probe", confidence=10,
            tls={"version": "TLSv1.3", "subject": "CN=gw.example.net"})),
    }
    gw_ports = [gw_special.get(n, closed(n)) for n in range(1, 1025)] + [
        PortResult(53, UDP, PortState.OPEN, "udp-response", ttl=64, service=Service(
            name="domain", product="ISC BIND", version="9.18.18", method="probe",
            confidence=10, cpe=("cpe:/a:isc:bind:9.18.18",))),
        PortResult(161, UDP, PortState.OPEN_FILTERED, "no-response",
                   service=Service(name="snmp")),
    ]
    gw = Host(
        address="192.0.2.10", status=HostStatus.UP, reason="echo-reply",
        hostnames=("gw.example.net", "router.example.net"),
        ports=tuple(gw_ports), mac="02:00:5e:10:00:01", rtt_ms=0.39,
        os=OSGuess(name="Linux 5.4 - 5.15", accuracy=96, family="Linux", vendor="Linux",
                   cpe=("cpe:/o:linux:linux_kernel:5",)),
        findings=(
            Finding(id="telnet-exposed:192.0.2.10:23/tcp", check="telnet-exposed",
                    severity=Severity.HIGH,
                    severity_reason="cleartext remote login reachable from this vantage",
                    title="Telnet is open", port=23, protocol=TCP,
                    risk="Passwords cross the network in clear text and can be sniffed.",
                    evidence="23/tcp open (syn-ack)",
                    remediation="Disable telnet; use SSH with keys.\nIf it must stay, "
                                "allow it only from a management network.",
                    references=("https://www.rfc-editor.org/rfc/rfc854",)),
            Finding(id="ssh-password:192.0.2.10:22/tcp", check="ssh-password-auth",
                    severity=Severity.MEDIUM,
                    severity_reason="password logins can be guessed from the internet",
                    title="SSH accepts passwords", port=22, protocol=TCP,
                    evidence="auth methods: publickey,password",
                    remediation="Set PasswordAuthentication no.", confidence=90,
                    extra={"methods": ["publickey", "password"]}),
            Finding(id="snmp:192.0.2.10:161/udp", check="snmp-exposed", severity=Severity.INFO,
                    severity_reason="no response: may be filtered",
                    title="SNMP may be reachable", port=161, protocol=UDP),
            Finding(id="admin-ui:192.0.2.10", check="admin-exposed", severity=Severity.LOW,
                    severity_reason="管理画面がインターネットから見えます",
                    title="管理画面が公開されています",
                    remediation="管理画面へのアクセスを社内ネットワークに限定してください。"),
        ),
    )
    down = Host(address="192.0.2.11", status=HostStatus.DOWN, reason="no-response")
    v6_special = {
        80: closed(80),
        443: PortResult(443, TCP, PortState.OPEN, "syn-ack", service=Service(
            name="https", product='Evil<"&">\x1b[31m\x07Server', version="1.0\x00",
            extrainfo="[bold]markup[/bold] \u202eevil",
            banner="HTTP/1.1 200 OK\r\nServer: Evil\x1b[2J\x00\xff\udcfe\r\n", method="banner",
            confidence=8)),
    }
    v6 = Host(address="2001:db8::5", status=HostStatus.UP, reason="syn-ack", rtt_ms=12.5,
              ports=tuple(v6_special.get(n, filtered(n)) for n in range(1, 1025)))
    return ScanRun(
        id="run-0001",
        started=datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC),
        finished=datetime(2026, 1, 15, 9, 30, 12, 345000, tzinfo=UTC),
        command="portscope audit -sS -sU -sV -p T:1-1024,U:53,161 192.0.2.10-11 2001:db8::5",
        scan_types=("syn", "udp"), ports_spec="T:1-1024,U:53,161",
        targets=("192.0.2.10-11", "2001:db8::5"), vantage="lab",
        hosts=(gw, down, v6),
        stats=Stats(probes_sent=3100, replies=2100, retransmissions=12, duration_s=12.345,
                    pps=251.1, hosts_total=3, hosts_up=2),
    )


def main() -> None:
    run = build()
    doc = run.to_dict()
    doc["hosts"] = [collapse_host(h).to_dict() for h in run.hosts]
    out = Path(__file__).with_name("sample_run.json")
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
