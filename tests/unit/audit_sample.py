"""A realistic audited run for the report and check tests (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portscope.checks import run_checks
from portscope.checks.config import AuditConfig
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

T0 = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)

RELAY_TRANSCRIPT = "\n".join([
    "S: 220 mail.example.test ESMTP Postfix (Debian/GNU)",
    "C: EHLO portscope.invalid",
    "S: 250-mail.example.test",
    "S: 250-PIPELINING",
    "S: 250 8BITMIME",
    "C: MAIL FROM:<>",
    "S: 250 2.1.0 Ok",
    "C: RCPT TO:<relaytest@example.com>",
    "S: 250 2.1.5 Ok",
    "C: RSET",
    "S: 250 2.0.0 Ok",
    "C: QUIT",
    "S: 221 2.0.0 Bye",
])


def port(n: int, proto: str = "tcp", svc: Service | None = None,
         state: PortState = PortState.OPEN) -> PortResult:
    reason = "syn-ack" if proto == "tcp" else "udp-response"
    return PortResult(n, Protocol(proto), state, reason, ttl=64, service=svc)


def sample_run(complete: bool = True) -> ScanRun:
    mail = Host("198.18.0.2", HostStatus.UP, "syn-ack", hostnames=("mail.example.test",),
                ports=(
        port(21, svc=Service("ftp", "vsftpd", "3.0.3", method="banner",
                             banner="220 (vsFTPd 3.0.3)",
                             extra={"anonymous_login": True, "auth_tls": False})),
        port(22, svc=Service("ssh", "OpenSSH", "9.2p1", "Debian 2+deb12u3", method="banner",
                             banner="SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
                             extra={"protocol_version": "2.0"})),
        port(23, svc=Service("telnet", method="probe", extra={"login_prompt": True})),
        port(25, svc=Service("smtp", "Postfix smtpd", method="banner",
                             banner="220 mail.example.test ESMTP Postfix (Debian/GNU)",
                             extra={"smtp_relay": {
                                 "verdict": "open", "tests": 16, "completed": 16,
                                 "accepted": 3, "accepted_tests": [
                                     {"mail_from": "", "rcpt_to": "relaytest@example.com",
                                      "reply": "250 2.1.5 Ok"}],
                                 "confirmed": None, "domain": "example.com",
                                 "transcript": RELAY_TRANSCRIPT}, "vrfy": True})),
        port(110, svc=Service("pop3", "Dovecot pop3d", method="banner",
                              extra={"starttls": False, "cleartext_auth": True})),
        port(161, "udp", Service("snmp", "net-snmp", method="probe",
                                 extra={"community": "public",
                                        "sys_descr": "Linux mail 6.1.0-21-amd64 #1 SMP x86_64",
                                        "versions": ["v1", "v2c"]})),
        port(443, svc=Service("http", "nginx", "1.22.1", method="probe", tunnel="ssl",
                              extra={"server": "nginx/1.22.1", "status": 200},
                              tls={"subject": "CN=mail.example.test",
                                   "subject_cn": "mail.example.test",
                                   "issuer": "CN=mail.example.test", "self_signed": True,
                                   "not_after": "2025-06-20T00:00:00Z", "days_left": 17,
                                   "expired": False, "key_type": "RSA", "key_bits": 2048,
                                   "signature_algorithm": "sha256WithRSAEncryption",
                                   "versions": ["TLSv1.2", "TLSv1.3"]})),
        port(69, "udp", state=PortState.OPEN_FILTERED),
    ))
    win = Host("198.18.0.6", HostStatus.UP, "syn-ack", ports=(
        port(135, svc=Service("msrpc")),
        port(139, svc=Service("netbios-ssn")),
        port(445, svc=Service("microsoft-ds", method="probe",
                              extra={"dialects": ["NT LM 0.12", "2.0.2", "2.1"], "smbv1": True,
                                     "signing": "enabled"})),
        port(4444, svc=Service("krb524")),
        port(3389, svc=Service("ms-wbt-server")),
    ))
    web = Host("198.18.0.10", HostStatus.UP, "syn-ack", ports=(
        port(22, svc=Service("ssh", "OpenSSH", "9.6p1", method="banner",
                             extra={"protocol_version": "2.0"})),
        port(443, svc=Service("https", method="probe", tunnel="ssl", tls={
            "subject": "CN=www.example.test", "issuer": "CN=Example CA",
            "self_signed": False, "expired": False, "days_left": 300,
            "key_type": "EC", "key_bits": 256, "versions": ["TLSv1.3"]})),
    ))
    down = Host("198.18.0.14", HostStatus.DOWN, "no-response")
    return ScanRun(
        id="20250602T093000Z-abc123", started=T0, finished=T0 + timedelta(seconds=42.5),
        command="portscope audit 198.18.0.0/28", scan_types=("connect",),
        ports_spec="T:1-1024,U:53,69,161", targets=("198.18.0.0/28",),
        vantage="audit-box (pid 4242)", complete=complete, hosts=(mail, win, web, down),
        stats=Stats(hosts_total=16, hosts_up=3))


def audited(lang: str = "en", config: AuditConfig | None = None) -> ScanRun:
    cfg = config or AuditConfig(lang=lang)
    return run_checks(sample_run(), cfg)
