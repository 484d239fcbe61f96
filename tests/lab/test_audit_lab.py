"""Issue 5 acceptance: ``portscope audit`` against real daemons in namespace lab hosts.

Each daemon runs inside its lab host with a config in a temp dir and dies with the host.
Checks that need service-detection facts (anonymous FTP, SNMP community, cleartext login)
are asserted when service detection (issue 4) is in this build, and the UDP parts when a
UDP scan type is; the port-based findings are asserted always.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _daemons_audit import start_postfix, stop_postfix, wait_port

from portscope.cli import main
from portscope.probes import get as get_scan_type
from portscope.testing.lab import LabHost

HAVE_DETECTION = importlib.util.find_spec("portscope.engine.services") is not None


def have_udp() -> bool:
    try:
        get_scan_type("U")
    except Exception:
        return False
    return True


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A temp dir daemons' unprivileged users can reach (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="portscope-audit-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def audit(args: list[str], out: Path) -> tuple[int, list[dict[str, Any]]]:
    try:
        main(["audit", *args, "--json", str(out), "-q", "--no-progress", "-Pn"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    doc = json.loads(out.read_text("utf-8"))
    return code, [f for h in doc["hosts"] for f in h["findings"]]


def by_check(findings: list[dict[str, Any]]) -> dict[tuple[str, int | None], dict[str, Any]]:
    return {(f["check"], f["port"]): f for f in findings}


@pytest.mark.slow
def test_postfix_open_relay_is_high_with_the_dialogue(lab_host: LabHost, tmp_path: Path,
                                                      world_dir: Path) -> None:
    work = world_dir
    start_postfix(lab_host, work, open_relay=True)
    try:
        code, findings = audit([lab_host.addr4, "-p", "25", "--fail-on", "high"],
                               tmp_path / "out.json")
    finally:
        stop_postfix(lab_host, work)
    assert code == 1
    relay = by_check(findings)[("smtp.open-relay", 25)]
    assert relay["severity"] == "high"
    assert "S: 220 mx.lab.test ESMTP Postfix" in relay["evidence"]
    assert "C: RCPT TO:<relaytest@example.com>" in relay["evidence"]
    assert "250 2.1.5 Ok" in relay["evidence"]
    assert "DATA" not in relay["evidence"].split("SMTP dialogue:")[1]


@pytest.mark.slow
def test_postfix_correctly_configured_is_not_an_open_relay(lab_host: LabHost, tmp_path: Path,
                                                           world_dir: Path) -> None:
    work = world_dir
    start_postfix(lab_host, work, open_relay=False)
    try:
        code, findings = audit([lab_host.addr4, "-p", "25", "--fail-on", "high"],
                               tmp_path / "out.json")
    finally:
        stop_postfix(lab_host, work)
    assert code == 0
    checks = by_check(findings)
    assert ("smtp.open-relay", 25) not in checks
    refused = checks[("smtp.relay-refused", 25)]
    assert refused["severity"] == "info" and "Relay access denied" in refused["evidence"]
    assert not [f for f in findings if f["severity"] in ("critical", "high")]


def test_telnetd(lab_host: LabHost, tmp_path: Path) -> None:
    conf = tmp_path / "inetd.conf"
    conf.write_text("telnet stream tcp nowait root /usr/sbin/telnetd telnetd\n", "utf-8")
    lab_host.popen(["inetutils-inetd", "-d", f"--pidfile={tmp_path / 'inetd.pid'}", str(conf)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(lab_host, 23)
    code, findings = audit([lab_host.addr4, "-p", "23", "--fail-on", "high"],
                           tmp_path / "out.json")
    assert code == 1
    checks = by_check(findings)
    assert checks[("exposure.service", 23)]["severity"] == "high"
    assert "SSH" in checks[("exposure.service", 23)]["remediation"]
    if HAVE_DETECTION:
        assert checks[("cleartext.login", 23)]["severity"] == "medium"


def test_vsftpd_anonymous(lab_host: LabHost, tmp_path: Path, world_dir: Path) -> None:
    root = world_dir / "anon"
    root.mkdir()
    (root / "README").write_text("public files\n", "utf-8")
    root.chmod(0o555)
    conf = tmp_path / "vsftpd.conf"
    conf.write_text(textwrap.dedent(f"""\
        listen=YES
        listen_ipv6=NO
        listen_address={lab_host.addr4}
        background=NO
        anonymous_enable=YES
        anon_root={root}
        local_enable=NO
        write_enable=NO
        secure_chroot_dir=/var/run/vsftpd/empty
        ftpd_banner=(vsFTPd 3.0.3)
        """), "utf-8")
    lab_host.popen(["/usr/sbin/vsftpd", str(conf)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wait_port(lab_host, 21)
    _, findings = audit([lab_host.addr4, "-p", "21"], tmp_path / "out.json")
    checks = by_check(findings)
    assert checks[("exposure.service", 21)]["severity"] == "medium"
    if HAVE_DETECTION:
        assert checks[("ftp.anonymous", 21)]["severity"] == "medium"
        assert checks[("cleartext.login", 21)]["severity"] == "medium"


def test_snmpd_public(lab_host: LabHost, tmp_path: Path) -> None:
    if not (have_udp() and HAVE_DETECTION):
        pytest.skip("needs a UDP scan type and service detection in this build")
    conf = tmp_path / "snmpd.conf"
    conf.write_text("rocommunity public\nsysName lab-snmp\n", "utf-8")
    lab_host.popen(["/usr/sbin/snmpd", "-f", "-Lo", "-C", "-c", str(conf),
                    f"udp:{lab_host.addr4}:161"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    _, findings = audit([lab_host.addr4, "-sU", "-p", "U:161"], tmp_path / "out.json")
    checks = by_check(findings)
    assert checks[("snmp.default-community", 161)]["severity"] == "high"


def test_windows_ports_and_blaster_chain(lab_host: LabHost, tmp_path: Path) -> None:
    lab_host.listen_tcp([135, 139, 445, 4444])
    udp: list[str] = []
    if have_udp():
        lab_host.listen_udp([69, 137, 138])
        udp = ["-sU", "-sT", "-p", "T:135,139,445,4444,U:69,137,138"]
    args = [lab_host.addr4, *(udp or ["-p", "135,139,445,4444"])]
    code, findings = audit([*args, "--fail-on", "critical"], tmp_path / "out.json")
    assert code == 1
    checks = by_check(findings)
    for port in (135, 139, 445):
        assert checks[("windows.port", port)]["severity"] == "high"
    assert checks[("malware.port", 4444)]["severity"] == "high"
    chain = checks[("malware.blaster-chain", None)]
    assert chain["severity"] == "critical" and "4444/tcp" in chain["title"]


def _certificate(tmp_path: Path, address: str) -> tuple[Path, Path]:
    """A test CA and a server certificate valid now for *address* (current algorithms)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portscope lab CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.lab.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("www.lab.test"),
                x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    crt, pem = tmp_path / "server.crt", tmp_path / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                    ca.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_ssh_and_https_only_host_has_no_high_findings(lab_host: LabHost, tmp_path: Path,
                                                      world_dir: Path) -> None:
    hostkey = tmp_path / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)],
                   check=True)
    sshd_conf = tmp_path / "sshd_config"
    sshd_conf.write_text(textwrap.dedent(f"""\
        ListenAddress {lab_host.addr4}
        Port 22
        HostKey {hostkey}
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PermitRootLogin no
        PidFile {tmp_path / 'sshd.pid'}
        """), "utf-8")
    Path("/run/sshd").mkdir(exist_ok=True)
    lab_host.popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_conf)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    crt, key = _certificate(world_dir, lab_host.addr4)
    nginx_conf = world_dir / "nginx.conf"
    nginx_conf.write_text(textwrap.dedent(f"""\
        daemon off;
        pid {world_dir / 'nginx.pid'};
        error_log stderr;
        events {{}}
        http {{
          access_log off;
          server_tokens off;
          client_body_temp_path {world_dir};
          proxy_temp_path {world_dir};
          fastcgi_temp_path {world_dir};
          uwsgi_temp_path {world_dir};
          scgi_temp_path {world_dir};
          server {{
            listen {lab_host.addr4}:443 ssl;
            ssl_certificate {crt};
            ssl_certificate_key {key};
            ssl_protocols TLSv1.2 TLSv1.3;
            location / {{ return 200 "ok\\n"; }}
          }}
        }}
        """), "utf-8")
    lab_host.popen(["nginx", "-c", str(nginx_conf), "-p", str(world_dir)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(lab_host, 22)
    wait_port(lab_host, 443)
    code, findings = audit([lab_host.addr4, "-p", "1-1024", "--fail-on", "high"],
                           tmp_path / "out.json")
    assert code == 0, findings
    ports = {f["port"] for f in findings}
    assert ports <= {22, 443}
    levels = {(f["check"], f["port"]): f["severity"] for f in findings}
    assert levels[("exposure.service", 22)] == "low"
    assert levels[("exposure.service", 443)] == "info"
    assert not [f for f in findings if f["severity"] in ("critical", "high")]
