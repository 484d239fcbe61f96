"""The /proc/net parser on tables recorded in a lab namespace (tests/data/local/record.py)
and on odd, truncated and hostile lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portscope.local import procnet
from portscope.local.listing import parse_listing
from portscope.model import BindScope, Family, Protocol

DATA = Path(__file__).parents[1] / "data" / "local"
ADDR4, ADDR6 = (DATA / "addresses.txt").read_text().split()


def tables() -> list[procnet.ProcTable]:
    out = []
    for name, (proto, fam) in procnet.FILES.items():
        out.append(procnet.parse_table((DATA / f"proc_net_{name}.txt").read_text(), proto, fam))
    return out


def key(s):  # type: ignore[no-untyped-def]
    return (s.protocol.value, s.address, s.port)


def test_recorded_tables_give_exactly_what_ss_lists() -> None:
    got = {key(s) for s in procnet.listening_sockets(tables())}
    ss = parse_listing((DATA / "ss_ltnu.txt").read_text())
    assert got == {key(s) for s in ss.sockets}
    assert len(got) == 12


def test_recorded_tables_decode_every_kind_of_address() -> None:
    socks = {key(s): s for s in procnet.listening_sockets(tables())}
    assert socks[("tcp", "0.0.0.0", 22)].scope is BindScope.ALL
    assert socks[("tcp", "::", 22)].family is Family.IPV6
    assert socks[("tcp", "127.0.0.1", 5432)].scope is BindScope.LOOPBACK
    assert socks[("tcp", "::1", 5432)].scope is BindScope.LOOPBACK
    assert socks[("tcp", ADDR4, 8080)].scope is BindScope.SPECIFIC
    assert socks[("tcp", ADDR6, 8443)].scope is BindScope.SPECIFIC
    mapped = socks[("tcp", f"::ffff:{ADDR4}", 9090)]
    assert mapped.family is Family.IPV6 and mapped.scope is BindScope.SPECIFIC
    assert mapped.reaches(ADDR4) and not mapped.reaches("198.18.99.1")
    assert socks[("udp", "127.0.0.1", 323)].state == "unconn"
    assert all(s.uid == 0 and s.inode for s in socks.values())
    assert all(s.v6only is None for s in socks.values())  # /proc cannot tell


def test_odd_states_are_parsed_but_not_listening() -> None:
    tcp4 = tables()[0]
    states = sorted(e.state_name for e in tcp4.entries)
    assert states == ["established", "established", "listen", "listen", "listen", "time-wait"]
    udp4 = tables()[2]
    connected = [e for e in udp4.entries if e.state == 0x01]
    assert len(connected) == 1 and connected[0].remote_port == 9
    assert not connected[0].listening
    assert procnet.ProcSocket(Protocol.TCP, Family.IPV4, "0.0.0.0", 1, "0.0.0.0", 0, 0xFF, 0,
                              1).state_name == "unknown-ff"


@pytest.mark.parametrize(("text", "order", "want"), [
    ("0100007F", "little", "127.0.0.1"),
    ("7F000001", "big", "127.0.0.1"),
    ("00000000", "little", "0.0.0.0"),
    ("00000000000000000000000001000000", "little", "::1"),
    ("0000000000000000FFFF0000060012C6", "little", "::ffff:198.18.0.6"),
    ("B80D0120000000000000000001000000", "little", "2001:db8::1"),
    ("20010DB8000000000000000000000001", "big", "2001:db8::1"),
])
def test_decode_address(text: str, order: procnet.Byteorder, want: str) -> None:
    assert procnet.decode_address(text, order) == want


HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode\n")
GOOD = ("   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
        "        0 1092 1 0000000051047bfe 100 0 0 10 0\n")


@pytest.mark.parametrize("junk", [
    GOOD[:40] + "\n",  # truncated read
    "   1: 00000000:0016\n",
    "garbage line\n",
    "   2: ZZZZZZZZ:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n",
    "   3: 00000000000000000000000000000000:0016 " + GOOD[23:],  # an IPv6 line in tcp
    "   4: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 x 0 1\n",
    "\x1b[2J" * 1000 + "\n",
    "9" * 100_000 + "\n",
])
def test_hostile_lines_are_skipped_and_counted(junk: str) -> None:
    table = procnet.parse_table(HEADER + junk + GOOD, "tcp", "ipv4")
    assert [(e.local_address, e.local_port) for e in table.entries] == [("0.0.0.0", 22)]
    assert table.skipped == 1


def test_empty_and_header_only() -> None:
    assert procnet.parse_table("", "tcp", "ipv4").entries == []
    t = procnet.parse_table(HEADER, "udp", "ipv6")
    assert (t.entries, t.skipped) == ([], 0)


def test_duplicate_lines_of_a_racing_read_count_once() -> None:
    t = procnet.parse_table(HEADER + GOOD + GOOD, "tcp", "ipv4")
    assert len(t.entries) == 2
    assert len(procnet.listening_sockets([t])) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789ABCDEF: \n\x00xyz"), max_size=400))
def test_fuzz_never_raises(text: str) -> None:
    for proto, fam in procnet.FILES.values():
        table = procnet.parse_table(text, proto, fam)
        procnet.listening_sockets([table])


@pytest.mark.parametrize(("link", "want"), [
    ("socket:[12345]", 12345), ("pipe:[1]", None), ("socket:[]", None),
    ("socket:[12a]", None), ("/dev/null", None), ("anon_inode:[eventpoll]", None),
])
def test_parse_fd_link(link: str, want: int | None) -> None:
    assert procnet.parse_fd_link(link) == want
