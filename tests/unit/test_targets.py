"""Target specs, port specs and the services database (no network: resolver is faked)."""

from __future__ import annotations

import socket

import pytest

from portscope.errors import PortSpecError, ResolveError, TargetSpecError
from portscope.targets import PortSpec, parse_ports, parse_targets, read_target_file, top_ports
from portscope.targets.services import ServiceDB, _parse_services_file


def fake_resolver(name: str, family: int) -> list[str]:
    table = {
        ("lab.test", socket.AF_INET): ["198.18.5.5"],
        ("lab.test", socket.AF_INET6): ["2001:db8::5"],
    }
    if (name, family) not in table:
        raise ResolveError(f"cannot resolve host name {name!r}")
    return table[(name, family)]


def addrs(*specs: str, **kw: object) -> list[str]:
    return list(parse_targets(list(specs), resolver=fake_resolver, **kw))  # type: ignore[arg-type]


def test_single_address_and_prefix() -> None:
    assert addrs("198.18.0.2") == ["198.18.0.2"]
    assert addrs("198.18.0.0/30") == ["198.18.0.0", "198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert addrs("198.18.0.9/31") == ["198.18.0.8", "198.18.0.9"]


def test_last_octet_range_and_octet_products() -> None:
    assert addrs("198.18.0.1-3") == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    got = addrs("198.18.1-3.1-254")
    assert len(got) == 3 * 254
    assert got[0] == "198.18.1.1" and got[253] == "198.18.1.254" and got[254] == "198.18.2.1"
    assert got[-1] == "198.18.3.254"
    assert addrs("198.18.0.1,5,7-8") == ["198.18.0.1", "198.18.0.5", "198.18.0.7", "198.18.0.8"]
    assert len(addrs("198.18.0.*")) == 256


def test_full_address_range_and_ipv6() -> None:
    assert addrs("198.18.0.254-198.18.1.1") == ["198.18.0.254", "198.18.0.255", "198.18.1.0",
                                                "198.18.1.1"]
    assert addrs("2001:db8::/126") == ["2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"]
    assert addrs("2001:DB8::0001") == ["2001:db8::1"]


def test_host_names_resolve_per_family() -> None:
    t = parse_targets(["lab.test"], resolver=fake_resolver)
    assert list(t) == ["198.18.5.5"] and t.hostnames == {"198.18.5.5": "lab.test"}
    t6 = parse_targets(["lab.test"], ipv6=True, resolver=fake_resolver)
    assert list(t6) == ["2001:db8::5"]
    with pytest.raises(ResolveError):
        parse_targets(["nowhere.test"], resolver=fake_resolver)


def test_duplicates_are_scanned_once_and_exclusions_apply() -> None:
    assert addrs("198.18.0.2", "198.18.0.0/30", "198.18.0.3") == [
        "198.18.0.0", "198.18.0.1", "198.18.0.2", "198.18.0.3"]
    t = parse_targets(["198.18.0.0/24"], exclude=["198.18.0.0/25,198.18.0.200"])
    got = list(t)
    assert len(got) == 127 and "198.18.0.200" not in got and got[0] == "198.18.0.128"
    assert t.count() == 127


@pytest.mark.parametrize("bad", ["", "198.18.0.300", "198.18.0.1/33", "198.18.0.5-2",
                                 "198.18.0.1-198.18.0.0", "bad host!", "198.18..1",
                                 "2001:db8::/129", "a b"])
def test_bad_target_specs(bad: str) -> None:
    with pytest.raises((TargetSpecError, ResolveError)):
        parse_targets([bad], resolver=fake_resolver)


def test_huge_space_is_not_materialised() -> None:
    t = parse_targets(["2001:db8::/64", "198.18.0.0/15"])
    assert t.raw_size == 2**64 + 2**17
    assert t.address_at(2**64 - 1) == "2001:db8::ffff:ffff:ffff:ffff" or \
        t.address_at(2**17 - 1) is not None


def test_target_file(tmp_path: object) -> None:
    import pathlib

    p = pathlib.Path(str(tmp_path)) / "targets.txt"
    p.write_text("# lab hosts\n198.18.0.1 198.18.0.2  # two\n\n198.18.0.0/30\n")
    assert read_target_file(str(p)) == ["198.18.0.1", "198.18.0.2", "198.18.0.0/30"]
    from portscope.errors import InputFileError

    with pytest.raises(InputFileError):
        read_target_file(str(p) + ".missing")


DB_TEXT = """
ssh 22/tcp 0.18
http 80/tcp 0.48 # World Wide Web
http 80/udp 0.0003
domain 53/udp 0.21
domain 53/tcp 0.04
https 443/tcp 0.20
snmp 161/udp 0.43
"""


@pytest.fixture
def db() -> ServiceDB:
    d = ServiceDB()
    _parse_services_file(DB_TEXT, d, with_frequency=True)
    return d


def test_port_specs(db: ServiceDB) -> None:
    assert parse_ports("22,80,443", db=db).tcp == (22, 80, 443)
    assert parse_ports("1-5", db=db).tcp == (1, 2, 3, 4, 5)
    assert len(parse_ports("-", db=db).tcp) == 65535
    assert parse_ports("-3", db=db).tcp == (1, 2, 3)
    assert parse_ports("65534-", db=db).tcp == (65534, 65535)
    spec = parse_ports("U:53,161,T:80,22", ("tcp", "udp"), db=db)
    assert spec.tcp == (22, 80) and spec.udp == (53, 161)
    assert spec.canonical() == "T:22,80,U:53,161"
    both = parse_ports("80", ("tcp", "udp"), db=db)
    assert both.tcp == (80,) and both.udp == (80,)


def test_service_names_and_globs(db: ServiceDB) -> None:
    assert parse_ports("ssh,http", db=db).tcp == (22, 80)
    assert parse_ports("domain", ("udp",), db=db).udp == (53,)
    assert parse_ports("http*", db=db).tcp == (80, 443)
    with pytest.raises(PortSpecError, match="unknown service name 'nosuch'"):
        parse_ports("nosuch", db=db)


@pytest.mark.parametrize("bad", ["", "70000", "5-1", "1-2-3", "S:80", ",", "x:80"])
def test_bad_port_specs(bad: str, db: ServiceDB) -> None:
    with pytest.raises(PortSpecError):
        parse_ports(bad, db=db)


def test_top_ports_ranked_by_frequency(db: ServiceDB) -> None:
    assert top_ports(3, db=db).tcp == (22, 80, 443)  # sorted for scanning
    assert db.top(3, "tcp") == [80, 443, 22]  # ranking
    assert top_ports(1, ("udp",), db=db).udp == (161,)
    # fewer ranked ports than asked: filled with the rest in numeric order
    assert len(top_ports(10, db=db).tcp) == 10


def test_builtin_ranking_without_nmap() -> None:
    from portscope.targets.services import load_builtin_rank

    d = ServiceDB()
    d.builtin_rank = [(p, n) for p, n, _ in load_builtin_rank()]
    top = d.top(1000, "tcp")
    assert top[:3] == [80, 443, 22] and len(top) == len(set(top)) == 1000
    assert d.top(5, "udp")[0] == 53


def test_portspec_helpers() -> None:
    s = PortSpec(tcp=(22, 80), udp=(53,))
    assert len(s) == 3 and s.pair_at(2) == ("udp", 53) and s.contains("tcp", 80)
    assert not s.contains("udp", 80)
    assert s.without(PortSpec(tcp=(80,))).tcp == (22,)
