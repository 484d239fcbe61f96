"""Replays of real daemons' answers (recorded by tests/data/services/record.py in the lab)
through the pure dialogs: same bytes in, same service out, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from portscope.services import PROTOCOLS
from portscope.services.base import (
    Context,
    Facts,
    Reconnect,
    Recv,
    Reply,
    ScriptItem,
    StartTLS,
    TLSResult,
    run_scripted,
)

DATA = Path(__file__).parent.parent / "data" / "services"
FIXTURES = sorted(DATA.glob("*.json"))


def decode(item: Any) -> ScriptItem:
    if item is None:
        return Reply()
    if "tls" in item:
        return TLSResult(bool(item["ok"]), item["tls"], item["error"])
    return Reply(bytes.fromhex(item["data"]), eof=item["eof"], timed_out=item["timed_out"],
                 error=item["error"])


def replay(fixture: dict[str, Any]) -> tuple[Facts, list[Any]]:
    proto = PROTOCOLS[fixture["protocol"]]
    factory = proto.udp if fixture["transport"] == "udp" else proto.dialog
    assert factory is not None
    ctx = Context("198.18.0.2", fixture["port"], transport=fixture["transport"],
                  tls=fixture["tls"], nonce=fixture["nonce"], intensity=fixture["intensity"],
                  now=datetime(2026, 1, 1, tzinfo=UTC))
    facts = Facts()
    made = run_scripted(factory(ctx, facts), [decode(a) for a in fixture["answers"]])
    return facts, made


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_replay_gives_the_recorded_service(path: Path) -> None:
    fixture = json.loads(path.read_text())
    facts, made = replay(fixture)
    got = facts.to_service().to_dict()
    want = fixture["service"]
    for key in ("name", "product", "version", "extrainfo", "cpe", "method", "confidence"):
        assert got[key] == want[key], key
    assert got["extra"] == want["extra"]
    # the dialog asked exactly as many questions as were recorded
    asked = [r for r in made if isinstance(r, Recv | StartTLS | Reconnect)]
    assert len(asked) == len(fixture["answers"])


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def service(name: str) -> dict[str, Any]:
    facts, _ = replay(load(name))
    return facts.to_service().to_dict()


def test_openssh_exact_version_and_algorithms() -> None:
    s = service("openssh")
    assert (s["name"], s["product"], s["version"]) == ("ssh", "OpenSSH", "9.2p1")
    assert s["extrainfo"].startswith("Debian 2+deb12u")
    assert s["cpe"] == ["cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*"]
    assert "curve25519-sha256" in s["extra"]["kex"]
    assert s["extra"]["protocol_version"] == "2.0"
    assert s["method"] == "banner"


def test_postfix_capabilities_and_starttls() -> None:
    s = service("postfix")
    assert (s["product"], s["version"]) == ("Postfix smtpd", "3.7.11")
    assert s["extra"]["starttls"] is True
    assert s["extra"]["vrfy"] is True and s["extra"]["expn"] is False
    assert s["extra"]["auth_before_tls"] is False
    assert "PIPELINING" in s["extra"]["ehlo"]


def test_vsftpd_anonymous_and_auth_tls() -> None:
    s = service("vsftpd")
    assert (s["product"], s["version"]) == ("vsftpd", "3.0.3")
    assert s["extra"]["anonymous_login"] is True
    assert s["extra"]["auth_tls"] is True


def test_nginx_http_and_https() -> None:
    plain, tls = service("nginx"), service("nginx-tls")
    assert (plain["name"], plain["product"], plain["version"]) == ("http", "nginx", "1.22.1")
    assert plain["extra"]["title"] == "portscope lab"
    assert plain["extra"]["status"] == 200
    assert tls["product"] == "nginx"


def test_dnsmasq_version_bind_no_recursion() -> None:
    for name in ("dnsmasq-udp", "dnsmasq-tcp"):
        s = service(name)
        assert (s["name"], s["product"], s["version"]) == ("domain", "dnsmasq", "2.90")
        assert s["extra"]["version_bind"] == "dnsmasq-2.90"
        assert s["extra"]["recursion"] is False


def test_netsnmp_version_from_ucd_mib() -> None:
    s = service("netsnmp")
    assert (s["product"], s["version"]) == ("net-snmp", "5.9.3")
    assert s["extra"]["community"] == "public"
    assert s["extra"]["versions"] == ["v1", "v2c", "v3"]
    assert s["extra"]["sys_descr"].startswith("Linux ")
    assert s["extra"]["engine_vendor"] == "net-snmp"


def test_redis_open_and_protected() -> None:
    s = service("redis")
    assert (s["product"], s["version"]) == ("Redis key-value store", "7.0.15")
    assert s["extra"]["auth_required"] is False
    assert service("redis-auth")["extra"]["auth_required"] is True


def test_postgresql_trust_and_scram() -> None:
    s = service("postgresql")
    assert (s["product"], s["version"]) == ("PostgreSQL DB", "15.20")
    assert s["extra"]["auth_required"] is False and s["extra"]["ssl"] is True
    scram = service("postgresql-scram")
    assert scram["extra"]["auth_required"] is True
    assert scram["extra"]["sasl_mechanisms"] == ["SCRAM-SHA-256"]
