"""The checks, on synthetic runs whose services carry the facts of docs/service-facts.md."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from audit_sample import audited, sample_run

from portscope.checks import CHECKS, run_checks
from portscope.checks.base import AUDIT_SOURCE, fingerprint
from portscope.checks.config import AuditConfig, OverrideRule, parse_config
from portscope.checks.kb import SeverityOverride
from portscope.checks.policy import parse_policy
from portscope.model import (
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
)

NOW = datetime(2025, 6, 2, tzinfo=UTC)


def port(n: int, proto: str = "tcp", name: str | None = None, *, method: str = "probe",
         state: PortState = PortState.OPEN, **kw: Any) -> PortResult:
    svc = Service(name, method=method, **kw) if name else None
    return PortResult(n, Protocol(proto), state, "syn-ack", service=svc)


def audit(*ports: PortResult, address: str = "198.18.0.2",
          config: AuditConfig | None = None) -> list[Finding]:
    run = ScanRun("t", NOW, NOW, hosts=(Host(address, HostStatus.UP, ports=ports),))
    return list(run_checks(run, config or AuditConfig(), now=NOW).hosts[0].findings)


def kinds(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_registry_names_match_finding_kinds() -> None:
    findings = audited().findings
    for _, f in findings:
        assert f.check.split(".")[0] in CHECKS
        assert f.extra["source"] == AUDIT_SOURCE
        assert f.severity_reason and f.title and f.remediation
        assert set(f.extra["i18n"]) == {"en", "ja"}


def test_exposure_uses_the_knowledge_base() -> None:
    fs = kinds(audit(port(23), port(40000)))
    assert fs["exposure.service"].severity is Severity.HIGH
    assert fs["exposure.service"].confidence == 50  # port number only
    assert fs["exposure.unknown"].severity is Severity.INFO
    levels = {f.port: f.severity for f in audit(port(23), port(443, name="https"))}
    assert levels == {23: Severity.HIGH, 443: Severity.INFO}


def test_open_filtered_ports_are_not_rated() -> None:
    assert audit(port(69, "udp", state=PortState.OPEN_FILTERED),
                 port(137, "udp", state=PortState.OPEN_FILTERED)) == []


def test_windows_ports_and_the_blaster_chain() -> None:
    fs = audit(port(135), port(139), port(445), port(4444), port(69, "udp"))
    by = {(f.check, f.port): f for f in fs}
    for p in (135, 139, 445):
        f = by[("windows.port", p)]
        assert f.severity is Severity.HIGH
        assert "Active Directory" in f.remediation  # the seed's advice on what closing breaks
    assert by[("malware.port", 4444)].severity is Severity.HIGH
    chain = by[("malware.blaster-chain", None)]
    assert chain.severity is Severity.CRITICAL
    assert "135/tcp" in chain.title and "4444/tcp" in chain.title and "69/udp" in chain.title
    assert by[("exposure.service", 69)].severity is Severity.HIGH  # TFTP
    assert not any(f.check == "malware.blaster-chain" for f in audit(port(135), port(445)))


def test_a_detected_service_on_a_worm_port_is_not_a_worm() -> None:
    fs = audit(port(4444, name="ssh", banner="SSH-2.0-OpenSSH_9.6"))
    assert [f.check for f in fs] == ["exposure.service"]
    assert fs[0].severity is Severity.LOW


def test_cleartext_logins() -> None:
    fs = audit(port(23, name="telnet"),
               port(21, name="ftp", extra={"auth_tls": False}),
               port(2121, name="ftp", extra={"auth_tls": True}),
               port(110, name="pop3", extra={"starttls": True, "cleartext_auth": True}),
               port(143, name="imap", extra={"starttls": True, "cleartext_auth": False}),
               port(587, name="submission", extra={"auth_before_tls": True}),
               port(2323, name="telnet", method="port-table"))
    clear = {f.port: f for f in fs if f.check == "cleartext.login"}
    assert set(clear) == {23, 21, 110, 587}
    assert all(f.severity is Severity.MEDIUM for f in clear.values())
    assert "AUTH TLS" in clear[21].risk and "SSH" in clear[23].remediation
    assert "smtpd_tls_auth_only" in clear[587].remediation
    unknown = kinds(audit(port(21, name="ftp")))["cleartext.login"]
    assert unknown.confidence == 60


def test_version_disclosure() -> None:
    fs = kinds(audit(port(80, name="http", product="Apache httpd", version="2.4.41",
                          extra={"server": "Apache/2.4.41 (Ubuntu)"})))
    f = fs["disclosure.version"]
    assert f.severity is Severity.LOW
    assert "Apache httpd 2.4.41" in f.title and "Server: Apache/2.4.41" in f.evidence
    assert "ServerTokens Prod" in f.remediation
    assert "disclosure.version" not in kinds(audit(port(80, name="http", product="nginx")))
    dns = kinds(audit(port(53, "udp", "domain", extra={"version_bind": "9.18.24-1"})))
    assert "9.18.24-1" in dns["disclosure.version"].title


def _tls(**facts: Any) -> PortResult:
    return port(443, name="https", tunnel="ssl", tls=facts)


def test_tls_certificate_problems() -> None:
    fs = kinds(audit(_tls(expired=True, not_after="2024-01-01T00:00:00Z", self_signed=True,
                          key_type="RSA", key_bits=1024,
                          signature_algorithm="sha1WithRSAEncryption",
                          versions=["SSLv3", "TLSv1.0", "TLSv1.2"])))
    assert fs["tls.expired"].severity is Severity.MEDIUM
    assert "2024-01-01" in fs["tls.expired"].title
    assert fs["tls.self-signed"].severity is Severity.MEDIUM
    assert fs["tls.weak-key"].severity is Severity.MEDIUM and "1024" in fs["tls.weak-key"].title
    assert fs["tls.weak-signature"].severity is Severity.MEDIUM
    old = fs["tls.old-protocol"]
    assert old.severity is Severity.HIGH and "SSLv3" in old.title
    assert old.severity_reason.startswith("High")
    assert "not_after: 2024-01-01" in fs["tls.expired"].evidence
    tls10 = kinds(audit(_tls(versions=["TLSv1.0", "TLSv1.2"])))["tls.old-protocol"]
    assert tls10.severity is Severity.MEDIUM and tls10.severity_reason.startswith("Medium")
    soon = kinds(audit(_tls(days_left=12, not_after="2025-06-14")))
    assert soon["tls.expiring"].severity is Severity.LOW and "12 days" in \
        soon["tls.expiring"].title
    good = audit(_tls(self_signed=False, expired=False, days_left=200, key_type="EC",
                      key_bits=256, signature_algorithm="ecdsa-with-SHA256",
                      versions=["TLSv1.2", "TLSv1.3"]))
    assert [f.check for f in good] == ["exposure.service"]


def test_private_names_only_matter_on_a_public_address() -> None:
    cert = _tls(private_names=["10.0.0.5", "intranet.corp"])
    assert "tls.private-names" not in kinds(audit(cert, address="198.18.0.2"))
    public = str(ipaddress.ip_address("8.8.8.8"))  # never contacted: checks are pure
    f = kinds(audit(cert, address=public))["tls.private-names"]
    assert f.severity is Severity.LOW and "intranet.corp" in f.title


def test_http_methods() -> None:
    write = kinds(audit(port(80, name="http", extra={"risky_methods": ["PUT", "DELETE"],
                                                      "methods": ["GET", "PUT", "DELETE"]})))
    assert write["http.risky-methods"].severity is Severity.MEDIUM
    trace = kinds(audit(port(80, name="http", extra={"risky_methods": ["TRACE"]})))
    assert trace["http.risky-methods"].severity is Severity.LOW


def test_ftp_anonymous_snmp_dns_ntp_smb_ssh() -> None:
    fs = kinds(audit(
        port(21, name="ftp", extra={"anonymous_login": True, "anonymous_writable": True,
                                    "auth_tls": False}),
        port(161, "udp", "snmp", extra={"community": "public", "sys_descr": "Linux lab 6.1"}),
        port(53, "udp", "domain", extra={"recursion": True}),
        port(123, "udp", "ntp", extra={"monlist": True}),
        port(445, name="microsoft-ds", extra={"dialects": ["NT LM 0.12", "2.1"],
                                              "signing": "disabled"}),
        port(22, name="ssh", extra={"protocol_version": "1.99"})))
    assert fs["ftp.anonymous"].severity is Severity.MEDIUM
    assert fs["ftp.anonymous-writable"].severity is Severity.HIGH
    snmp = fs["snmp.default-community"]
    assert snmp.severity is Severity.HIGH and "public" in snmp.title
    assert "Linux lab 6.1" in snmp.evidence
    assert fs["dns.open-recursion"].severity is Severity.MEDIUM
    assert fs["ntp.monlist"].severity is Severity.HIGH
    assert fs["smb.smbv1"].severity is Severity.HIGH
    assert fs["smb.signing"].severity is Severity.MEDIUM
    assert fs["ssh.protocol-v1"].severity is Severity.HIGH
    assert "snmp.default-community" not in kinds(audit(
        port(161, "udp", "snmp", extra={"community": "s3cr3t-ro"})))


def test_unauthenticated_access() -> None:
    fs = audit(port(6379, name="redis", extra={"auth_required": False}),
               port(27017, name="mongodb", extra={"auth_required": True}),
               port(5900, name="vnc", extra={"security_types": ["None"]}),
               port(389, name="ldap", extra={"anonymous_bind": True}))
    noauth = {f.port: f for f in fs if f.check == "access.no-auth"}
    assert set(noauth) == {6379, 5900}
    assert all(f.severity is Severity.CRITICAL for f in noauth.values())
    assert kinds(fs)["ldap.anonymous-bind"].severity is Severity.MEDIUM


RELAY = {"verdict": "open", "tests": 16, "completed": 16, "accepted": 2,
         "accepted_tests": [{"mail_from": "", "rcpt_to": "relaytest@example.com",
                             "reply": "250 2.1.5 Ok"}],
         "confirmed": None, "domain": "example.com",
         "transcript": "S: 220 mx ESMTP\nC: EHLO portscope.invalid\nC: RCPT TO:<relaytest@"
                       "example.com>\nS: 250 2.1.5 Ok"}


def test_open_relay_is_high_with_the_dialogue_as_evidence() -> None:
    f = kinds(audit(port(25, name="smtp", extra={"smtp_relay": RELAY})))["smtp.open-relay"]
    assert f.severity is Severity.HIGH
    assert "2 of 16" in f.title
    assert "RCPT TO:<relaytest@example.com>" in f.evidence and "S: 220 mx ESMTP" in f.evidence
    assert f.confidence == 80
    assert "qmail" in f.extra["i18n"]["en"]["confidence_note"]
    assert "qmail" in f.extra["i18n"]["ja"]["confidence_note"]
    confirmed = kinds(audit(port(25, name="smtp", extra={"smtp_relay": {
        **RELAY, "confirmed": True}})))["smtp.open-relay"]
    assert confirmed.confidence == 100


@pytest.mark.parametrize(("verdict", "kind"), [("refused", "smtp.relay-refused"),
                                               ("auth-required", "smtp.relay-refused"),
                                               ("inconclusive", "smtp.relay-inconclusive")])
def test_relay_not_open(verdict: str, kind: str) -> None:
    relay = {**RELAY, "verdict": verdict, "accepted": 0, "accepted_tests": [],
             "error": "no reply in time (mail)" if verdict == "inconclusive" else None}
    fs = kinds(audit(port(25, name="smtp", extra={"smtp_relay": relay})))
    assert fs[kind].severity is Severity.INFO
    assert "smtp.open-relay" not in fs
    if verdict == "auth-required":
        assert "authentication" in fs[kind].severity_reason


def test_smtp_user_enumeration() -> None:
    f = kinds(audit(port(25, name="smtp", extra={"vrfy": True, "expn": True})))
    assert f["smtp.user-enumeration"].severity is Severity.LOW
    assert "VRFY/EXPN" in f["smtp.user-enumeration"].title


def test_seed_authors_overrides_ftp_high_pop3_low() -> None:
    config = parse_config({"services": {
        "ftp": {"severity": "high", "reason": "FTP is how the ministry pages were defaced."},
        "pop3": {"severity": "low", "reason": "A stolen POP3 password exposes one mailbox."},
    }}, "audit.toml")
    fs = {f.port: f for f in audit(port(21), port(110), config=config)
          if f.check == "exposure.service"}
    assert fs[21].severity is Severity.HIGH and fs[110].severity is Severity.LOW
    assert fs[21].extra["overridden"] is True
    assert fs[21].extra["default_severity"] == "medium"
    assert "defaced" in fs[21].severity_reason and "audit.toml" in fs[21].severity_reason
    assert "「中」" in fs[21].extra["i18n"]["ja"]["severity_reason"]


def test_check_and_rule_overrides_and_disable() -> None:
    config = AuditConfig(
        checks={"tls.*": SeverityOverride(Severity.LOW, "internal CA", "c.toml")},
        rules=(OverrideRule(Severity.INFO, "office FTP", "c.toml", check="exposure.service",
                            port=21, hosts=(ipaddress.ip_network("198.18.0.0/24"),)),),
        disable=frozenset({"disclosure"}))
    fs = audit(_tls(self_signed=True), port(21),
               port(22, name="ssh", product="OpenSSH", version="9.2p1"), config=config)
    by = {f.check: f for f in fs}
    assert by["tls.self-signed"].severity is Severity.LOW
    assert "internal CA" in by["tls.self-signed"].severity_reason
    ftp = next(f for f in fs if f.port == 21)
    assert ftp.severity is Severity.INFO
    assert "disclosure.version" not in by
    other_host = audit(port(21), address="198.19.0.2", config=config)
    assert other_host[0].severity is Severity.MEDIUM


def test_policy_deviations() -> None:
    policy = parse_policy({
        "name": "perimeter",
        "groups": {"office": ["203.0.113.0/24"]},
        "hosts": [{"name": "web", "targets": ["198.18.0.0/24"],
                   "allow": ["tcp/80", "tcp/443", {"ports": "tcp/20-21", "from": ["office"]}],
                   "require": ["tcp/443"]}],
    })
    host = Host("198.18.0.2", HostStatus.UP, ports=(port(80), port(21), port(23),
                                                    port(443, state=PortState.CLOSED)),
                extra={"scanned_from": "198.18.0.1"})
    run = ScanRun("t", NOW, NOW, ports_spec="T:1-1024", hosts=(host,))
    fs = run_checks(run, AuditConfig(policy=policy)).hosts[0].findings
    by = {(f.check, f.port): f for f in fs if f.check.startswith("policy.")}
    assert set(by) == {("policy.not-allowed", 23), ("policy.source-not-allowed", 21),
                       ("policy.missing", 443)}
    assert by[("policy.not-allowed", 23)].severity is Severity.HIGH  # telnet's own level
    src = by[("policy.source-not-allowed", 21)]
    assert src.severity is Severity.MEDIUM and "198.18.0.1" in src.title and "office" in \
        src.title
    assert by[("policy.missing", 443)].severity is Severity.LOW
    from_office = run_checks(run, AuditConfig(policy=policy, source="203.0.113.7"))
    assert not any(f.check == "policy.source-not-allowed"
                   for f in from_office.hosts[0].findings)
    outside = run_checks(replace(run, hosts=(replace(host, address="198.19.0.9"),)),
                         AuditConfig(policy=policy))
    assert not any(f.check.startswith("policy.") for f in outside.hosts[0].findings)


def test_fingerprints_are_stable_and_rerunning_replaces_findings() -> None:
    first = audited()
    second = run_checks(first, AuditConfig())
    assert [f.id for _, f in first.findings] == [f.id for _, f in second.findings]
    p = PortResult(23, Protocol.TCP, PortState.OPEN, "syn-ack")
    assert fingerprint("exposure.service", "198.18.0.2", p) == \
        fingerprint("exposure.service", "198.18.0.2", p)
    assert fingerprint("exposure.service", "198.18.0.2", p) != \
        fingerprint("exposure.service", "198.18.0.3", p)
    foreign = Finding("x1", "custom.thing", Severity.LOW, "mine", "kept")
    run = sample_run()
    run = replace(run, hosts=(replace(run.hosts[0], findings=(foreign,)), *run.hosts[1:]))
    assert foreign in run_checks(run).hosts[0].findings


def test_findings_are_worst_first_and_in_the_configured_language() -> None:
    run = audited("ja")
    for h in run.hosts:
        ranks = [f.severity.rank for f in h.findings]
        assert ranks == sorted(ranks, reverse=True)
    mail = run.hosts[0]
    assert any("TELNET" in f.title and "到達可能" in f.title for f in mail.findings)
    assert run.extra["audit"]["lang"] == "ja"


def test_down_hosts_get_no_findings_and_run_round_trips() -> None:
    run = audited()
    assert run.host("198.18.0.14").findings == ()  # type: ignore[union-attr]
    again = ScanRun.from_dict(run.to_dict())
    assert [f.to_dict() for _, f in again.findings] == [f.to_dict() for _, f in run.findings]


def test_banner_evidence_text_and_binary() -> None:
    from portscope.checks.base import banner_evidence

    assert banner_evidence("220 mail ESMTP\r\n250 ok\r\n") == "220 mail ESMTP\n250 ok"
    ldap = "0\x84\x00\x00\x00\x10\x02\x01\x01a\x84\x00\x00\x00\x07\n\x01\x00\x04\x00\x04\x00"
    out = banner_evidence(ldap)
    assert out.startswith(f"binary reply, {len(ldap)} bytes: 30 84 00 00 00 10 02 01")
    assert "\x00" not in out and "\x84" not in out
    assert banner_evidence("x" * 10 + "\x00" * 40).endswith(" ...")


def test_rdp_security_layer_and_nla() -> None:
    def rdp(protocols: list[str], product: str = "Microsoft Terminal Services") -> PortResult:
        nla = "hybrid" in protocols and not {"rdp", "ssl"} & set(protocols)
        return port(3389, name="ms-wbt-server", product=product,
                    extra={"protocols": protocols, "nla_required": nla})

    legacy = kinds(audit(rdp(["rdp", "ssl"], "xrdp")))
    assert legacy["rdp.standard-security"].severity is Severity.MEDIUM
    assert "Standard RDP Security, TLS" in legacy["rdp.standard-security"].evidence
    assert "xrdp" in legacy["rdp.standard-security"].evidence
    assert legacy["rdp.nla-not-required"].severity is Severity.MEDIUM
    tls_only = kinds(audit(rdp(["ssl"])))
    assert "rdp.standard-security" not in tls_only and "rdp.nla-not-required" in tls_only
    nla = kinds(audit(rdp(["hybrid"])))
    assert not {"rdp.standard-security", "rdp.nla-not-required"} & set(nla)
    ja = audit(rdp(["rdp"]))[0].extra["i18n"]["ja"]
    assert any("リモートデスクトップ" in str(v) for v in ja.values())
