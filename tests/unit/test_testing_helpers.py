"""Pure parts of portscope.testing: listener port specs, nmap XML, tier policy, test DB URLs."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portscope.errors import DataError
from portscope.testing import postgres as pglib
from portscope.testing.listener import format_ports, parse_ports, port_ranges
from portscope.testing.nmap import NmapPort, parse_nmap_xml
from portscope.testing.tiers import in_ci, skip_or_fail


def test_parse_and_format_ports() -> None:
    assert parse_ports("22, 80,1000-1002,80") == [22, 80, 1000, 1001, 1002]
    assert parse_ports("") == []
    assert format_ports([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert port_ranges([5]) == [(5, 5)]
    for bad in ("0", "70000", "5-3", "x"):
        with pytest.raises(ValueError):
            parse_ports(bad)


@given(st.sets(st.integers(1, 65535), max_size=50))
def test_port_spec_round_trip(ports: set[int]) -> None:
    assert parse_ports(format_ports(ports)) == sorted(ports)


NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -sS" version="7.93">
<host><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="198.18.0.2" addrtype="ipv4"/>
<address addr="62:E8:63:E0:50:0B" addrtype="mac"/>
<ports>
<extraports state="closed" count="3">
<extrareasons reason="reset" count="3" proto="tcp" ports="100-101,103"/>
</extraports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/></port>
<port protocol="tcp" portid="9000"><state state="filtered" reason="admin-prohibited"
 reason_ttl="64"/></port>
<port protocol="udp" portid="53"><state state="open|filtered" reason="no-response"
 reason_ttl="0"/></port>
</ports></host>
<runstats><finished time="1"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"""


def test_parse_nmap_xml() -> None:
    (host,) = parse_nmap_xml(NMAP_XML)
    assert host.address == "198.18.0.2"
    assert host.status == "up"
    assert host.states("tcp") == {
        22: ("open", "syn-ack"),
        100: ("closed", "reset"),
        101: ("closed", "reset"),
        103: ("closed", "reset"),
        9000: ("filtered", "admin-prohibited"),
    }
    assert host.state(53, "udp") == NmapPort(53, "udp", "open|filtered", "no-response", 0)
    assert host.state(53, "tcp") is None
    with pytest.raises(DataError):
        parse_nmap_xml("<nmaprun")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)],
)
def test_in_ci(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_skip_or_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="lab tier unavailable: no root"):
        skip_or_fail("no root", tier="lab")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI=true: no root"):
        skip_or_fail("no root", tier="lab")


def test_postgres_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTSCOPE_TEST_POSTGRES_URL", raising=False)
    assert pglib.admin_url() == "postgresql://postgres@127.0.0.1:5432/test"
    monkeypatch.setenv("PORTSCOPE_TEST_POSTGRES_URL", "postgresql://u@127.0.0.1:5433/x")
    assert pglib.admin_url() == "postgresql://u@127.0.0.1:5433/x"
    assert (
        pglib.with_database("postgresql://u@127.0.0.1:5432/test?sslmode=disable", "pstest_1_2")
        == "postgresql://u@127.0.0.1:5432/pstest_1_2?sslmode=disable"
    )
    with pytest.raises(ValueError, match="not a test database"):
        pglib.drop_database("postgresql://u@127.0.0.1:5432/test")


def test_postgres_unreachable_reason() -> None:
    # a loopback port this test holds bound but not listening: connecting is refused
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        reason = pglib.unavailable_reason(f"postgresql://postgres@127.0.0.1:{port}/test")
    assert reason is not None
    assert f"not reachable at 127.0.0.1:{port}" in reason
