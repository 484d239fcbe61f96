"""Pure parts of the namespace lab: names, address allocation, firewall rule building."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portscope.testing import lab as lablib
from portscope.testing.lab import (
    LAB_NET4,
    LAB_NET6,
    LINK_SLOTS,
    LabError,
    LabUnavailable,
    allocate_block,
    allocate_link,
    check_lab_network,
    link_networks,
    multiport_chunks,
    networks_in_ip_json,
    normalize_ports,
    ns_name,
    parse_owner,
    port_match,
    reject_with,
    restore_input,
    veth_name,
)

net = ipaddress.ip_network


def test_names_round_trip_and_fit_ifnamsiz() -> None:
    assert ns_name(1234, 5) == "pslab-1234-5"
    assert parse_owner("pslab-1234-5") == (1234, 5)
    assert parse_owner(veth_name(1234, 5)) == (1234, 5)
    assert len(veth_name(4194304, 9999)) <= 15  # pid_max on 64-bit Linux
    with pytest.raises(LabError):
        veth_name(4194304, 999999)
    assert parse_owner("pslab-x-1") is None
    assert parse_owner("eth0") is None
    assert parse_owner("pslab-12-3probe") is None


def test_link_networks() -> None:
    assert link_networks(0) == (net("198.18.0.0/30"), net("2001:db8::/64"))
    assert link_networks(1) == (net("198.18.0.4/30"), net("2001:db8:0:1::/64"))
    last4, last6 = link_networks(LINK_SLOTS - 1)
    assert last4 == net("198.18.63.252/30")
    assert last6.subnet_of(LAB_NET6)
    with pytest.raises(LabError):
        link_networks(LINK_SLOTS)


def test_allocate_link_skips_used_addresses_and_routes() -> None:
    assert allocate_link([]) == 0
    assert allocate_link([net("198.18.0.1/32")]) == 1  # a root-side address
    assert allocate_link([net("2001:db8::/64")]) == 1  # IPv6 taken, IPv4 free: skip both
    assert allocate_link([net("198.18.0.0/24")]) == 64  # a route over 64 links
    assert allocate_link([net("10.0.0.0/8"), net("fd00::/64")]) == 0  # unrelated
    assert allocate_link([net("198.18.0.4/30")], start=1) == 2
    assert allocate_link([net("198.18.0.0/30")], start=LINK_SLOTS - 1) == LINK_SLOTS - 1
    with pytest.raises(LabError, match="used up"):
        allocate_link([net("198.18.0.0/18")])


@given(st.lists(st.tuples(st.integers(0, LINK_SLOTS * 4 - 1), st.integers(24, 32)), max_size=20))
def test_allocated_link_overlaps_nothing_used(spec: list[tuple[int, int]]) -> None:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        ipaddress.IPv4Network((int(LAB_NET4.network_address) + off, plen), strict=False)
        for off, plen in spec
    ]
    index = allocate_link(used)
    net4, net6 = link_networks(index)
    assert not any(u.overlaps(net4) for u in used)
    assert net4.subnet_of(LAB_NET4)
    assert net6.subnet_of(LAB_NET6)


def test_allocate_block() -> None:
    assert allocate_block(16, []) == net("198.19.0.0/16")
    with pytest.raises(LabError, match="no free /16"):
        allocate_block(16, [net("198.19.0.0/24")])
    assert allocate_block(24, [net("198.19.0.0/24")]) == net("198.19.1.0/24")
    assert allocate_block(17, [net("198.19.0.0/16")]) == net("198.18.128.0/17")
    assert allocate_block(64, [], version=6) == net("2001:db8:8000::/64")
    for block in (allocate_block(p, []) for p in (16, 20, 28, 32)):
        assert block.subnet_of(LAB_NET4)
        assert not block.overlaps(net("198.18.0.0/18"))  # never the host links


def test_check_lab_network_refuses_everything_else() -> None:
    for ok in ("198.18.0.0/15", "198.19.255.0/24", "2001:db8:1::/48", "2001:db8::1/128"):
        check_lab_network(net(ok))
    for bad in ("10.0.0.0/8", "198.17.255.0/24", "198.16.0.0/14", "192.0.2.0/24", "fd00::/64"):
        with pytest.raises(LabError, match="outside the lab ranges"):
            check_lab_network(net(bad))


def test_normalize_ports() -> None:
    assert normalize_ports(22) == [22]
    assert normalize_ports("80,22,1000-1002") == [22, 80, 1000, 1001, 1002]
    assert normalize_ports({443, 80}) == [80, 443]
    assert normalize_ports(range(5, 7)) == [5, 6]
    for bad in (0, 65536, "1-0", [70000]):
        with pytest.raises((LabError, ValueError)):
            normalize_ports(bad)
    with pytest.raises(LabError, match="no ports"):
        normalize_ports([])


def test_multiport_chunks_respect_15_slots() -> None:
    assert multiport_chunks([22]) == ["22"]
    assert multiport_chunks([1, 2, 3, 10]) == ["1:3,10"]
    singles = list(range(1, 40, 2))  # 20 single ports
    chunks = multiport_chunks(singles)
    assert [len(c.split(",")) for c in chunks] == [15, 5]
    ranges = [p for base in range(0, 1000, 100) for p in range(base + 1, base + 5)]  # 10 ranges
    chunks = multiport_chunks(ranges)
    assert [c.count(":") for c in chunks] == [7, 3]  # 7 ranges = 14 slots, then 3
    flat = []
    for c in chunks:
        for part in c.split(","):
            lo, _, hi = part.partition(":")
            flat.extend(range(int(lo), int(hi or lo) + 1))
    assert flat == ranges


def test_port_match_and_reject_mapping() -> None:
    assert port_match("22") == ["--dport", "22"]
    assert port_match("1000:2000") == ["--dport", "1000:2000"]
    assert port_match("22,80") == ["-m", "multiport", "--dports", "22,80"]
    assert reject_with("icmp-admin-prohibited", 4) == "icmp-admin-prohibited"
    assert reject_with("icmp-admin-prohibited", 6) == "icmp6-adm-prohibited"
    assert reject_with("tcp-reset", 6) == "tcp-reset"
    assert reject_with("icmp-port-unreachable", 6) == "icmp6-port-unreachable"
    assert reject_with("icmp6-no-route", 6) == "icmp6-no-route"
    with pytest.raises(LabError):
        reject_with("icmp-bogus", 6)


def test_restore_input() -> None:
    doc = restore_input([["-A", "INPUT", "-j", "DROP"]], chains=["PSLAB-LOSS"])
    assert doc == "*filter\n:PSLAB-LOSS - [0:0]\n-A INPUT -j DROP\nCOMMIT\n"


def test_networks_in_ip_json() -> None:
    addrs = [
        {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
        {
            "ifname": "pl1h1",
            "addr_info": [
                {"local": "198.18.0.1", "prefixlen": 30},
                {"local": "2001:db8::1", "prefixlen": 64},
                {"local": "fe80::1", "prefixlen": 64},
            ],
        },
    ]
    routes = [
        {"dst": "default"},
        {"dst": "198.18.0.0/15", "type": "unreachable"},  # the guard: not a use
        {"dst": "2001:db8::/32", "type": "unreachable"},
        {"dst": "198.19.0.0/16"},
        {"dst": "198.18.0.9"},  # host route without prefix
        {"dst": "192.0.2.0/24"},
    ]
    found = set(networks_in_ip_json(addrs, routes))
    assert found == {
        net("198.18.0.0/30"),
        net("198.18.0.1/32"),
        net("2001:db8::/64"),
        net("2001:db8::1/128"),
        net("198.19.0.0/16"),
        net("198.18.0.9/32"),
    }


def test_unavailable_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lablib, "_availability", False)  # forget the cached probe
    monkeypatch.setattr(lablib.os, "geteuid", lambda: 1000)
    reason = lablib.unavailable_reason()
    assert reason is not None
    assert "needs root" in reason
    assert "uid 1000" in reason
    with pytest.raises(LabUnavailable, match="needs root") as info:
        lablib.Lab()
    assert info.value.reason == reason
    assert info.value.exit_code == 69


def test_unavailable_without_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lablib, "_availability", False)
    monkeypatch.setattr(lablib.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lablib, "tool", lambda name: None if "iptables" in name else "/bin/x")
    reason = lablib.unavailable_reason()
    assert reason is not None
    assert "iptables" in reason
    assert "install" in reason
