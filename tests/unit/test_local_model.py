"""The inventory model: bind scopes, which addresses a socket takes, JSON round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from portscope.errors import DataError
from portscope.model import (
    BindScope,
    Family,
    Inventory,
    ListeningSocket,
    LocalAddress,
    SocketProcess,
    bind_scope,
    canonical_address,
)

S = ListeningSocket.make


@pytest.mark.parametrize(("addr", "scope"), [
    ("0.0.0.0", BindScope.ALL), ("::", BindScope.ALL), ("::ffff:0.0.0.0", BindScope.ALL),
    ("127.0.0.1", BindScope.LOOPBACK), ("127.0.0.53", BindScope.LOOPBACK),
    ("::1", BindScope.LOOPBACK), ("::ffff:127.0.0.1", BindScope.LOOPBACK),
    ("198.18.0.2", BindScope.SPECIFIC), ("fe80::1", BindScope.SPECIFIC),
    ("::ffff:198.18.0.2", BindScope.SPECIFIC),
])
def test_bind_scope(addr: str, scope: BindScope) -> None:
    assert bind_scope(addr) is scope


@pytest.mark.parametrize(("sock", "target", "want"), [
    (S("tcp", "0.0.0.0", 1), "198.18.0.2", True),
    (S("tcp", "0.0.0.0", 1), "2001:db8::2", False),
    (S("tcp", "::", 1, v6only=True), "198.18.0.2", False),
    (S("tcp", "::", 1, v6only=True), "2001:db8::2", True),
    (S("tcp", "::", 1, v6only=False), "198.18.0.2", True),
    (S("tcp", "::", 1), "198.18.0.2", True),  # unknown: the kernel default is dual stack
    (S("tcp", "::ffff:0.0.0.0", 1), "198.18.0.2", True),
    (S("tcp", "::ffff:0.0.0.0", 1), "2001:db8::2", False),
    (S("tcp", "::ffff:198.18.0.2", 1), "198.18.0.2", True),
    (S("tcp", "198.18.0.2", 1), "::ffff:198.18.0.2", True),
    (S("tcp", "198.18.0.2", 1), "198.18.0.3", False),
    (S("tcp", "127.0.0.1", 1), "127.0.0.1", True),
    (S("tcp", "127.0.0.1", 1), "198.18.0.2", False),
])
def test_reaches(sock: ListeningSocket, target: str, want: bool) -> None:
    assert sock.reaches(target) is want


@pytest.mark.parametrize(("sock", "shown"), [
    (S("tcp", "0.0.0.0", 1), "0.0.0.0"),
    (S("tcp", "::", 1, v6only=True), "[::]"),
    (S("tcp", "::", 1, v6only=False), "*"),
    (S("tcp", "::", 1), "[::]"),
    (S("udp", "127.0.0.53", 53, interface="lo"), "127.0.0.53%lo"),
    (S("tcp", "::ffff:198.18.0.2", 1), "[::ffff:198.18.0.2]"),
])
def test_display_address_like_ss(sock: ListeningSocket, shown: str) -> None:
    assert sock.display_address == shown


def test_make_derives_family_scope_and_state() -> None:
    s = S("udp", "2001:DB8::0002", 53)
    assert (s.family, s.scope, s.address, s.state) == (
        Family.IPV6, BindScope.SPECIFIC, "2001:db8::2", "unconn")
    assert canonical_address("::ffff:c612:2") == "::ffff:198.18.0.2"
    with pytest.raises(DataError):
        S("tcp", "not-an-address", 1)


def test_inventory_round_trip() -> None:
    proc = (SocketProcess(pid=10, name="nginx", user="root", fd=6, cmdline=("nginx",)),
            SocketProcess(pid=11, name="nginx", user="www-data", fd=6))
    inv = Inventory(
        hostname="web1", taken=datetime(2026, 1, 2, tzinfo=UTC), collector="netlink",
        platform="Linux 6.1", netns="web1", process_detail="partial", notes=("n",),
        addresses=(LocalAddress("198.18.0.2", "eth0", 30), LocalAddress("::1", "lo", 128)),
    ).with_sockets([S("tcp", "::", 80, v6only=False, uid=0, inode=7, service="http",
                      processes=proc),
                    S("udp", "fe80::1", 123, interface="eth0")])
    doc = json.loads(json.dumps(inv.to_dict()))
    assert (doc["sockets"][0]["pid"], doc["sockets"][0]["process"]) == (10, "nginx")
    assert Inventory.from_dict(doc) == inv


def test_minimal_hand_written_inventory() -> None:
    inv = Inventory.from_dict({"kind": "portscope-inventory", "sockets": [
        {"protocol": "tcp", "address": "0.0.0.0", "port": 22, "pid": 5, "process": "sshd"}]})
    (s,) = inv.sockets
    assert (s.scope, s.family, s.pid, s.process, s.state) == (
        BindScope.ALL, Family.IPV4, 5, "sshd", "listen")


@pytest.mark.parametrize(("doc", "msg"), [
    ({}, "not a portscope inventory"),
    ([], "not a portscope inventory"),
    ({"kind": "portscope-inventory", "schema_version": 99}, "upgrade"),
    ({"kind": "portscope-inventory", "sockets": [{"protocol": "tcp", "port": 1}]},
     "missing field 'address'"),
    ({"kind": "portscope-inventory", "sockets": [{"protocol": "sctp", "address": "::",
                                                  "port": 1}]}, "not one of"),
    ({"kind": "portscope-inventory", "sockets": [{"protocol": "tcp", "address": "::",
                                                  "port": 70000}]}, "out of range"),
    ({"kind": "portscope-inventory", "sockets": [{"protocol": "tcp", "address": "::",
                                                  "port": 1, "v6only": "yes"}]}, "v6only"),
    ({"kind": "portscope-inventory", "sockets": "all"}, "expected a list"),
    ({"kind": "portscope-inventory", "process_detail": "some"}, "process_detail"),
])
def test_malformed_inventories_raise_data_error(doc: object, msg: str) -> None:
    with pytest.raises(DataError, match=msg):
        Inventory.from_dict(doc)  # type: ignore[arg-type]
