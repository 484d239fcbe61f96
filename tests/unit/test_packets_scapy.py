"""Cross-check of the codecs against an independent implementation (scapy, test-only):
what we encode, scapy parses to the same fields with valid checksums; what scapy builds,
we decode to the same fields."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portscope.packets import fast, icmp, ip, tcp, udp

scapy_all = pytest.importorskip("scapy.all")
IP, IPv6, TCP, UDP, ICMP = (scapy_all.IP, scapy_all.IPv6, scapy_all.TCP, scapy_all.UDP,
                            scapy_all.ICMP)
raw = scapy_all.raw
IPerror, TCPerror = scapy_all.IPerror, scapy_all.TCPerror

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
addr4 = st.tuples(*(st.integers(0, 255) for _ in range(4))).map(lambda t: ".".join(map(str, t)))
addr6 = st.integers(0, 2**128 - 1).map(
    lambda n: __import__("ipaddress").IPv6Address(n).compressed)
ports = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
options = st.lists(st.sampled_from([tcp.mss(1460), tcp.mss(536), tcp.nop(), tcp.wscale(7),
                                    tcp.sack_permitted(), tcp.timestamp(12345, 678)]),
                   max_size=4)


def _valid_checksums(pkt: object) -> bool:
    """Do the checksums in *pkt* equal the ones scapy computes itself?"""
    fresh = pkt.__class__(raw(pkt))  # type: ignore[attr-defined]
    rebuilt = fresh.copy()
    for i in range(4):
        sub = rebuilt.getlayer(i)
        if sub is None:
            break
        for field in ("chksum", "cksum"):
            if field in sub.fields:
                delattr(sub, field)  # (also drops scapy's cache of the dissected bytes)
    return bool(raw(rebuilt) == raw(fresh))


def test_checksum_oracle_can_fail() -> None:
    good = ip.IPv4("198.18.0.1", "198.18.0.2", 17).encode(
        udp.UDP(1, 2, b"abc").encode("198.18.0.1", "198.18.0.2"))
    assert _valid_checksums(IP(good))
    bad = good[:26] + bytes([good[26] ^ 1]) + good[27:]
    assert not _valid_checksums(IP(bad))


@given(addr4, addr4, ports, ports, u32, u32, st.integers(0, 0xFF), ports, options,
       st.binary(max_size=32), st.integers(1, 255), ports)
@SETTINGS
def test_tcp4_encode_parsed_by_scapy(src: str, dst: str, sport: int, dport: int, seq: int,
                                     ack: int, flags: int, window: int,
                                     opts: list[tcp.TCPOption], payload: bytes, ttl: int,
                                     ident: int) -> None:
    seg = tcp.TCP(sport, dport, seq, ack, flags, window, options=tuple(opts),
                  payload=payload).encode(src, dst)
    pkt = ip.IPv4(src, dst, 6, ttl=ttl, ident=ident, flags=ip.FLAG_DF).encode(seg)
    s = IP(pkt)
    assert (s.src, s.dst, s.ttl, s.id, s.proto) == (src, dst, ttl, ident, 6)
    assert s.flags == 2
    t = s[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window) == (sport, dport, seq, ack,
                                                                       flags, window)
    assert bytes(t.payload) == payload
    assert _valid_checksums(s)


@given(addr6, addr6, ports, ports, u32, st.integers(0, 0xFF), options)
@SETTINGS
def test_tcp6_template_parsed_by_scapy(src: str, dst: str, sport: int, dport: int, seq: int,
                                       flags: int, opts: list[tcp.TCPOption]) -> None:
    pkt = fast.TcpTemplate(src, dst, flags, window=512, options=tuple(opts)).render(
        sport, dport, seq)
    s = IPv6(pkt)
    assert s.nh == 6 and s.plen == len(pkt) - 40
    t = s[TCP]
    assert (t.sport, t.dport, t.seq, int(t.flags), t.window) == (sport, dport, seq, flags, 512)
    assert _valid_checksums(s)


@given(addr4, addr4, ports, ports, u32, st.integers(0, 0x1F), options,
       st.binary(max_size=16), st.booleans())
@SETTINGS
def test_scapy_tcp_decoded_by_us(src: str, dst: str, sport: int, dport: int, seq: int,
                                 flags: int, opts: list[tcp.TCPOption], payload: bytes,
                                 df: bool) -> None:
    sopts = []
    for kind, data in opts:
        sopts.append({tcp.OPT_MSS: ("MSS", int.from_bytes(data or b"\0\0", "big")),
                      tcp.OPT_NOP: ("NOP", None),
                      tcp.OPT_WSCALE: ("WScale", data[0] if data else 0),
                      tcp.OPT_SACK_PERMITTED: ("SAckOK", b""),
                      tcp.OPT_TIMESTAMP: ("Timestamp", (12345, 678))}[kind])
    s = IP(src=src, dst=dst, flags="DF" if df else 0) / TCP(
        sport=sport, dport=dport, seq=seq, flags=flags, options=sopts) / payload
    data = raw(s)
    pkt = ip.decode_ip(data)
    assert pkt is not None and pkt.checksum_ok and (pkt.src, pkt.dst) == (src, dst)
    assert isinstance(pkt.header, ip.IPv4) and pkt.header.dont_fragment == df
    seg = tcp.decode_tcp(pkt.payload)
    assert seg is not None and tcp.verify_tcp(pkt.payload, src, dst)
    assert (seg.sport, seg.dport, seg.seq, seg.flags, seg.payload) == (sport, dport, seq, flags,
                                                                       payload)
    want = [k for k, _ in opts]
    got = [k for k, _ in seg.options if k != tcp.OPT_EOL]
    assert got == want


@given(addr6, addr6, ports, ports, st.binary(max_size=40))
@SETTINGS
def test_udp6_both_ways(src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
    ours = ip.IPv6(src, dst, 17).encode(udp.UDP(sport, dport, payload).encode(src, dst))
    s = IPv6(ours)
    assert (s[UDP].sport, s[UDP].dport, bytes(s[UDP].payload)) == (sport, dport, payload)
    assert _valid_checksums(s)
    theirs = raw(IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)
    pkt = ip.decode_ip(theirs)
    assert pkt is not None
    d = udp.decode_udp(pkt.payload)
    assert d is not None and (d.sport, d.dport, d.payload) == (sport, dport, payload)
    assert d.checksum == udp.decode_udp(udp.UDP(sport, dport, payload).encode(src, dst)
                                        ).checksum  # type: ignore[union-attr]


def test_icmp_errors_from_scapy() -> None:
    probe = IP(src="198.18.0.1", dst="198.18.0.2", id=4242) / TCP(sport=40001, dport=23,
                                                                   seq=0xCAFEBABE, flags="S")
    for code in (0, 1, 2, 3, 9, 10, 13):
        err = IP(src="198.18.0.2", dst="198.18.0.1", ttl=63) / ICMP(type=3, code=code) / \
            IPerror(raw(probe)[:28])
        rep = fast.parse_reply(raw(err))
        assert rep is not None and rep.kind == fast.K_ICMP_ERROR
        assert (rep.target, rep.port, rep.our_port, rep.seq, rep.ack) == (
            bytes([198, 18, 0, 2]), 23, 40001, 0xCAFEBABE, 4242)
        assert (rep.icmp_type, rep.icmp_code, rep.ttl) == (3, code, 63)
        msg = icmp.decode_icmp(ip.decode_ip(raw(err)).payload)  # type: ignore[union-attr]
        assert msg is not None and msg.quoted() is not None


def test_icmpv6_errors_and_echo_from_scapy() -> None:
    probe = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=40002, dport=161) / b"x"
    err = IPv6(src="2001:db8::2", dst="2001:db8::1") / \
        scapy_all.ICMPv6DestUnreach(code=4) / raw(probe)
    rep = fast.parse_reply(raw(err))
    assert rep is not None and (rep.kind, rep.proto, rep.port, rep.our_port, rep.icmp_code) == (
        fast.K_ICMP_ERROR, 17, 161, 40002, 4)
    echo = IPv6(src="2001:db8::2", dst="2001:db8::1") / scapy_all.ICMPv6EchoReply(id=7, seq=9)
    rep = fast.parse_reply(raw(echo))
    assert rep is not None and (rep.kind, rep.our_port, rep.seq) == (fast.K_ECHO_REPLY, 7, 9)


def test_our_icmp_parsed_by_scapy() -> None:
    ts = icmp.timestamp_request(0x1111, 2, 123456).encode()
    s = IP(ip.IPv4("198.18.0.1", "198.18.0.2", 1).encode(ts))
    assert s[ICMP].type == 13 and s[ICMP].id == 0x1111 and s[ICMP].ts_ori == 123456
    assert _valid_checksums(s)
    ns = scapy_all.raw(IPv6(src="2001:db8::1", dst="ff02::1:ff00:2") /
                       scapy_all.ICMPv6ND_NS(tgt="2001:db8::2") /
                       scapy_all.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"))
    from portscope.packets import ether
    ours = ether.neighbor_solicit("2001:db8::2", "02:00:00:00:00:01").encode(
        "2001:db8::1", "ff02::1:ff00:2")
    assert ns[40:] == ours
