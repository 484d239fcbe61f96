"""What real MariaDB, Samba, memcached and OpenLDAP answered (recorded by
tests/data/services/record_more.py), replayed through the dialogs and the checks: the
fixes these daemons showed were needed, without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from portscope.checks import run_checks
from portscope.checks.config import AuditConfig
from portscope.checks.disclosure import GUESSED
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun, Service
from portscope.services import PROTOCOLS, smb
from portscope.services.base import Context, Facts, Reply, run_scripted

DATA = Path(__file__).parent.parent / "data" / "services"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def replay(fx: dict[str, Any]) -> Service:
    proto = PROTOCOLS[fx["protocol"]]
    factory = proto.udp if fx["transport"] == "udp" else proto.dialog
    assert factory is not None
    ctx = Context("198.18.0.2", fx["port"], transport=fx["transport"], tls=fx["tls"],
                  nonce=fx["nonce"], intensity=fx["intensity"], now=NOW)
    facts = Facts()
    answers = [Reply() if a is None else
               Reply(bytes.fromhex(a["data"]), eof=a["eof"], timed_out=a["timed_out"],
                     error=a["error"]) for a in fx["answers"]]
    run_scripted(factory(ctx, facts), answers)
    return facts.to_service()


def findings(svc: Service, port: int, proto: str = "tcp") -> dict[str, Any]:
    p = PortResult(port, Protocol(proto), PortState.OPEN, "syn-ack", service=svc)
    run = ScanRun("t", NOW, NOW, hosts=(Host("198.18.0.2", HostStatus.UP, ports=(p,)),))
    return {f.check: f for f in run_checks(run, AuditConfig(), now=NOW).hosts[0].findings}


# --- Samba: NativeLanMan over SMBv1 -----------------------------------------------------------


def test_samba_smbv1_session_setup_names_the_exact_version() -> None:
    svc = replay(fixture("samba-smbv1"))
    lanman = svc.extra["native_lanman"]
    assert lanman.startswith("Samba 4.")  # "Samba 4.17.12-Debian" when recorded
    version = lanman.split()[1].split("-")[0]
    assert (svc.product, svc.version) == ("Samba smbd", version)
    assert svc.cpe == (f"cpe:2.3:a:samba:samba:{version}:*:*:*:*:*:*:*",)
    assert svc.extra["smbv1"] is True and svc.extra["dialects"][0] == "NT LM 0.12"
    assert svc.extra["primary_domain"] == "LABGROUP"
    assert svc.extra["native_os"] == "Windows 6.1"  # what Samba claims to be


def test_smb1_session_setup_answer_parses() -> None:
    answers = [a for a in fixture("samba-smbv1")["answers"] if a]
    raw = bytes.fromhex(answers[-1]["data"])  # the last question was the session setup
    info = smb.parse_smb1_session_setup(raw)
    assert info is not None and info["status"] == smb.STATUS_MORE_PROCESSING_REQUIRED
    assert info["native_lanman"].startswith("Samba ")
    ntlm = smb.parse_ntlm_challenge(info["security_blob"])
    assert ntlm is not None and ntlm["netbios_computer"] == "LABSMB"
    assert smb.parse_smb1_session_setup(raw[:20]) is None
    assert smb.parse_smb1_session_setup(b"\0\0\0\x30" + b"\xfeSMB" + bytes(60)) is None


def test_smb1_session_setup_request_is_well_formed() -> None:
    token = smb.spnego_init(smb.ntlm_negotiate())
    req = smb.smb1_session_setup(token)
    assert int.from_bytes(req[1:4], "big") == len(req) - 4
    msg = req[4:]
    assert msg[:5] == b"\xffSMB\x73" and msg[32] == 12  # 12 parameter words
    count = int.from_bytes(msg[33 + 24: 33 + 26], "little")
    assert len(msg) == 33 + 24 + 2 + count and token in msg
    strings = msg[33 + 26 + len(token):]
    assert (33 + 26 + len(token) + (len(strings) - len(strings.lstrip(b"\0")))) % 2 == 0


def test_samba_smb2_only_is_a_range_and_not_a_disclosure() -> None:
    svc = replay(fixture("samba"))
    assert (svc.product, svc.version) == ("Samba smbd", "3.X - 4.X")
    assert svc.extra["smbv1"] is False and svc.extra["signing"] == "enabled"
    checks = findings(svc, 445)
    assert "disclosure.version" not in checks  # was reported before: a guess is no leak
    assert checks["smb.signing"].severity.value == "medium"
    assert "smb.smbv1" not in checks
    exact = findings(replay(fixture("samba-smbv1")), 445)
    assert "disclosure.version" in exact and "smb.smbv1" in exact


@pytest.mark.parametrize(("version", "guessed"), [
    ("3.X - 4.X", True), ("2.6.X", True), ("6.0.x", True), ("X11R7", False),
    ("2.2.X - 2.3.X", True),
    ("4.17.12", False), ("1.6.18", False), ("10.11.19", False), ("5.5.5-10.11.19", False),
    ("9.2p1 Debian 2+deb12u3", False)])
def test_guessed_versions(version: str, guessed: bool) -> None:
    assert bool(GUESSED.search(version)) is guessed


def test_netbios_ns_of_nmbd() -> None:
    svc = replay(fixture("samba-netbios-ns"))
    assert (svc.name, svc.product) == ("netbios-ns", "Samba nmbd")
    assert svc.extra["netbios_name"] == "LABSMB" and svc.extra["workgroup"] == "LABGROUP"


# --- OpenLDAP: "require authc" -----------------------------------------------------------------


def test_openldap_refusing_anonymous_search_is_still_openldap() -> None:
    svc = replay(fixture("openldap-authc"))
    assert (svc.name, svc.product) == ("ldap", "OpenLDAP")
    assert svc.extra == {"anonymous_bind": False, "error": "authentication required"}
    assert "ldap.anonymous-bind" not in findings(svc, 389)


def test_openldap_root_dse() -> None:
    svc = replay(fixture("openldap"))
    assert (svc.product, svc.version) == ("OpenLDAP", None)
    assert svc.extra["naming_contexts"] == ["dc=lab,dc=example"]
    assert findings(svc, 389)["ldap.anonymous-bind"].severity.value == "medium"


# --- MariaDB and memcached: right already, kept so --------------------------------------------


def test_mariadb_handshake_and_refusal() -> None:
    svc = replay(fixture("mariadb"))
    assert svc.product == "MariaDB" and svc.version == \
        svc.extra["server_version"].split("-")[1]  # 5.5.5-<version>-MariaDB-...
    refused = replay(fixture("mariadb-refused"))
    assert (refused.product, refused.version, refused.extrainfo) == \
        ("MariaDB", None, "unauthorized")
    assert findings(refused, 3306)["exposure.service"].severity.value == "high"


def test_memcached_open_and_with_authentication() -> None:
    for name in ("memcached", "memcached-udp"):
        svc = replay(fixture(name))
        assert svc.product == "Memcached" and svc.extra["auth_required"] is False
        proto = "udp" if name.endswith("udp") else "tcp"
        assert findings(svc, 11211, proto)["access.no-auth"].severity.value == "critical"
    auth = replay(fixture("memcached-auth"))
    assert (auth.product, auth.version, auth.extra["auth_required"]) == \
        ("Memcached", None, True)
    assert "access.no-auth" not in findings(auth, 11211)
