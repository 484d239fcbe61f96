"""The sock_diag codec on replies recorded in a lab namespace, round trips, and malformed
input."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from portscope.local import sockdiag
from portscope.local.listing import parse_listing
from portscope.model import Family, Protocol

DATA = Path(__file__).parents[1] / "data" / "local"


def recorded() -> dict[str, sockdiag.DumpResult]:
    out = {}
    for line in (DATA / "sockdiag_dump.hex").read_text().splitlines():
        name, *chunks = line.split()
        res = sockdiag.DumpResult()
        seq = ["tcp", "tcp6", "udp", "udp6"].index(name) + 1
        for c in chunks:
            sockdiag.parse_dump(bytes.fromhex(c), res, seq=seq)
        out[name] = res
    return out


def test_request_layout() -> None:
    req = sockdiag.dump_request("tcp", "ipv6", seq=7)
    length, mtype, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, mtype, flags, seq, pid) == (len(req), 20, 0x301, 7, 0)
    assert len(req) == 16 + 56
    family, proto, ext, states = struct.unpack_from("=BBBxI", req, 16)
    assert (family, proto, ext, states) == (10, 6, 0, 1 << 10)
    udp = sockdiag.dump_request(Protocol.UDP, Family.IPV4)
    assert struct.unpack_from("=BBBxI", udp, 16) == (2, 17, 0, 1 << 7)


def test_recorded_dump_matches_ss_including_dual_stack() -> None:
    res = recorded()
    assert all(r.done and not r.error and not r.skipped for r in res.values())
    socks = []
    for name, r in res.items():
        proto = Protocol.TCP if name.startswith("tcp") else Protocol.UDP
        socks += [d.to_socket(proto) for d in r.sockets]
    got = {(s.protocol.value, s.display_address, s.port) for s in socks}
    ss = parse_listing((DATA / "ss_ltnu.txt").read_text())
    want = {(s.protocol.value, s.display_address, s.port) for s in ss.sockets}
    # ss writes "*" for a dual-stack "::" and "[::]" for an IPv6-only one: so do we
    assert ("tcp", "*", 80) in got and ("tcp", "[::]", 22) in got
    assert ("udp", "*", 5353) in got and ("udp", "[::]", 53) in got
    assert got == want


def test_dual_stack_reaches_ipv4_v6only_does_not() -> None:
    socks = {(d.local_address, d.local_port): d.to_socket("tcp")
             for d in recorded()["tcp6"].sockets}
    assert socks[("::", 80)].v6only is False and socks[("::", 80)].reaches("198.18.0.6")
    assert socks[("::", 22)].v6only is True and not socks[("::", 22)].reaches("198.18.0.6")
    assert socks[("::", 22)].reaches("2001:db8:0:1::2")


def test_round_trip_and_error() -> None:
    d = sockdiag.DiagSocket(family=Family.IPV6, state=10, local_address="fe80::1",
                            local_port=123, remote_address="::", remote_port=0, ifindex=2,
                            uid=1000, inode=99, v6only=True)
    data = sockdiag.encode_message(d, seq=3) + sockdiag.encode_done(seq=3)
    res = sockdiag.parse_dump(data, seq=3)
    assert res.done and res.sockets == [d]
    err = sockdiag.parse_dump(sockdiag.encode_error(errno.ENOENT, seq=1), seq=1)
    assert err.done and err.error == errno.ENOENT and not err.sockets
    other = sockdiag.parse_dump(sockdiag.encode_message(d, seq=4), seq=3)
    assert other.skipped == 1 and not other.sockets


def test_truncated_messages_are_skipped() -> None:
    d = sockdiag.DiagSocket(family=Family.IPV4, state=10, local_address="198.18.0.2",
                            local_port=22, remote_address="0.0.0.0", remote_port=0, ifindex=0,
                            uid=0, inode=1)
    msg = sockdiag.encode_message(d)
    for cut in range(len(msg)):
        res = sockdiag.parse_dump(msg[:cut])
        assert not res.sockets
    # a header that claims a body shorter than inet_diag_msg
    short = struct.pack("=IHHII", 20, 20, 2, 1, 0) + b"\0" * 4
    assert sockdiag.parse_dump(short).skipped == 1
    # an attribute whose length runs past the message keeps the socket, without v6only
    body = bytearray(sockdiag.encode_message(d))
    body += struct.pack("=HH", 200, sockdiag.INET_DIAG_SKV6ONLY)
    struct.pack_into("=I", body, 0, len(body))
    res = sockdiag.parse_dump(bytes(body))
    assert [s.local_port for s in res.sockets] == [22] and res.sockets[0].v6only is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_never_raises(data: bytes) -> None:
    sockdiag.parse_dump(data)
    sockdiag.parse_message(data)
