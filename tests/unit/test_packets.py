"""Packet codecs: exact bytes (RFC examples and vectors recorded from an independent
encoder), round trips, hostile input, and the fast path against the full decoders."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portscope.packets import csum as ck
from portscope.packets import ether, fast, icmp, ip, tcp, udp

# vectors recorded from scapy 2.8 (see test_packets_scapy.py for the live cross-check)
SYN_V4 = bytes.fromhex(
    "4500003c1234400040069c60c6120001c61200029c4000500102030400000000a0020400173e0000"
    "020405b40103030a0402080a0000000100000000")
UDP_V6 = bytes.fromhex(
    "60000000000d114020010db800000000000000000000000120010db8000000000000000000000002"
    "cf080035000d914f68656c6c6f")
ECHO_V4 = bytes.fromhex("45000020000700004001eeaec6120001c61200020800d6eb4242000170696e67")
ECHO_V6 = bytes.fromhex(
    "60000000000c3aff20010db800000000000000000000000120010db8000000000000000000000002"
    "800003304242000170696e67")
SYN_OPTIONS = (tcp.mss(1460), tcp.nop(), tcp.wscale(10), tcp.sack_permitted(),
               tcp.timestamp(1, 0))


def test_rfc1071_example() -> None:
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ck.ones_sum(data) == 0xDDF2
    assert ck.checksum(data) == 0x220D


def test_ipv4_header_checksum_known_header() -> None:
    head = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert ck.checksum(head) == 0xB861
    assert ck.checksum(head[:10] + b"\xb8\x61" + head[12:]) == 0


def test_odd_length_is_padded() -> None:
    assert ck.ones_sum(b"\x01") == 0x0100
    assert ck.checksum(b"\x01\x02\x03") == ~(0x0102 + 0x0300) & 0xFFFF


@given(st.binary(min_size=2, max_size=64).filter(lambda b: len(b) % 2 == 0),
       st.integers(0, 31), st.integers(0, 0xFFFF))
def test_incremental_update_matches_recompute(data: bytes, word: int, new: int) -> None:
    i = (word % (len(data) // 2)) * 2
    old = int.from_bytes(data[i:i + 2], "big")
    changed = data[:i] + new.to_bytes(2, "big") + data[i + 2:]
    # one's-complement arithmetic has two zeros; compare as checksums of the data
    got = ck.incremental_update(ck.checksum(data), old, new)
    assert ck.ones_sum(changed) in (~got & 0xFFFF, (~got & 0xFFFF) % 0xFFFF)


def test_syn_exact_bytes() -> None:
    seg = tcp.TCP(40000, 80, seq=0x01020304, flags=tcp.TCPFlags.SYN, window=1024,
                  options=SYN_OPTIONS).encode("198.18.0.1", "198.18.0.2")
    pkt = ip.IPv4("198.18.0.1", "198.18.0.2", 6, ttl=64, ident=0x1234,
                  flags=ip.FLAG_DF).encode(seg)
    assert pkt == SYN_V4


def test_udp6_exact_bytes() -> None:
    dgram = udp.UDP(53000, 53, b"hello").encode("2001:db8::1", "2001:db8::2")
    assert ip.IPv6("2001:db8::1", "2001:db8::2", 17, hop_limit=64).encode(dgram) == UDP_V6


def test_echo_exact_bytes() -> None:
    msg = icmp.echo_request(0x4242, 1, b"ping").encode()
    assert ip.IPv4("198.18.0.1", "198.18.0.2", 1, ident=7).encode(msg) == ECHO_V4
    msg6 = icmp.echo_request6(0x4242, 1, b"ping").encode("2001:db8::1", "2001:db8::2")
    assert ip.IPv6("2001:db8::1", "2001:db8::2", 58, hop_limit=255).encode(msg6) == ECHO_V6


def test_decode_syn() -> None:
    pkt = ip.decode_ip(SYN_V4)
    assert pkt is not None and pkt.checksum_ok and pkt.proto == 6
    assert isinstance(pkt.header, ip.IPv4)
    assert pkt.header.dont_fragment and pkt.header.ident == 0x1234 and pkt.ttl == 64
    seg = tcp.decode_tcp(pkt.payload)
    assert seg is not None
    assert (seg.sport, seg.dport, seg.seq, seg.flags, seg.window) == (40000, 80, 0x01020304,
                                                                      2, 1024)
    assert seg.options == SYN_OPTIONS
    assert seg.mss == 1460 and seg.wscale == 10 and seg.timestamps == (1, 0)
    assert tcp.format_options(seg.options) == "M5B4NWAST10"  # nmap's OPS notation
    assert tcp.verify_tcp(pkt.payload, pkt.src, pkt.dst)


def test_decode_ipv6_with_extension_headers() -> None:
    dgram = udp.UDP(1, 2, b"x").encode("2001:db8::1", "2001:db8::2")
    hop = bytes((17, 0)) + b"\x01\x04\x00\x00\x00\x00"  # hop-by-hop: PadN, next = UDP
    frag = bytes((0, 0, 0, 0)) + b"\x00\x00\x00\x01"  # fragment header, offset 0
    pkt = ip.IPv6("2001:db8::1", "2001:db8::2", 44).encode(frag + hop + dgram)
    dec = ip.decode_ip(pkt)
    assert dec is not None and dec.proto == 17 and not dec.fragment
    got = udp.decode_udp(dec.payload)
    assert got is not None and got.payload == b"x"
    rep = fast.parse_reply(pkt)
    assert rep is not None and rep.kind == fast.K_UDP and rep.payload == b"x"


def test_icmp_error_quotes_probe() -> None:
    probe = ip.IPv4("198.18.0.1", "198.18.0.2", 6, ident=99).encode(
        tcp.TCP(40000, 443, seq=0xDEADBEEF, flags=2).encode("198.18.0.1", "198.18.0.2"))
    err = icmp.ICMP(icmp.DEST_UNREACH, icmp.UNREACH_ADMIN_PROHIB, body=probe[:28]).encode()
    pkt = ip.IPv4("198.18.0.2", "198.18.0.1", 1, ttl=63).encode(err)
    msg = icmp.decode_icmp(ip.decode_ip(pkt).payload)  # type: ignore[union-attr]
    assert msg is not None and msg.is_error and ck.checksum(err) == 0
    q = msg.quoted()
    assert q is not None
    assert (q.dst, q.proto, q.sport, q.dport, q.seq, q.ident) == ("198.18.0.2", 6, 40000, 443,
                                                                  0xDEADBEEF, 99)
    rep = fast.parse_reply(pkt)
    assert rep == fast.Reply(fast.K_ICMP_ERROR, bytes([198, 18, 0, 2]), 6, 443, 40000,
                             0xDEADBEEF, 99, 0, 0, 3, 13, bytes([198, 18, 0, 2]), 63, b"")


def test_icmpv6_port_unreachable_quotes_udp() -> None:
    probe = ip.IPv6("2001:db8::1", "2001:db8::2", 17).encode(
        udp.UDP(41000, 161, b"abc").encode("2001:db8::1", "2001:db8::2"))
    err = icmp.ICMPv6(icmp.V6_DEST_UNREACH, icmp.V6_UNREACH_PORT, body=probe).encode(
        "2001:db8::2", "2001:db8::1")
    pkt = ip.IPv6("2001:db8::2", "2001:db8::1", 58).encode(err)
    rep = fast.parse_reply(pkt)
    assert rep is not None and rep.kind == fast.K_ICMP_ERROR
    assert (rep.proto, rep.port, rep.our_port, rep.icmp_type, rep.icmp_code) == (17, 161, 41000,
                                                                                 1, 4)
    msg = icmp.decode_icmpv6(ip.decode_ip(pkt).payload)  # type: ignore[union-attr]
    assert msg is not None and msg.quoted() is not None


def test_timestamp_request_layout() -> None:
    msg = icmp.timestamp_request(1, 2, 3).encode()
    assert len(msg) == 20 and ck.checksum(msg) == 0
    dec = icmp.decode_icmp(msg)
    assert dec is not None and dec.timestamps == (3, 0, 0) and dec.ident == 1


def test_arp_and_nd_round_trip() -> None:
    req = ether.arp_request("02:00:00:00:00:01", "198.18.0.1", "198.18.0.2")
    dec = ether.decode_arp(req.encode())
    assert dec == req
    frame = ether.Ethernet(ether.BROADCAST, "02:00:00:00:00:01", ether.ETH_P_ARP,
                           req.encode()).encode()
    assert ether.decode_ethernet(frame) is not None
    assert ether.solicited_node("2001:db8::1:2345") == "ff02::1:ff01:2345"
    assert ether.multicast_mac("ff02::1:ff01:2345") == "33:33:ff:01:23:45"
    ns = ether.neighbor_solicit("2001:db8::2", "02:00:00:00:00:01")
    assert ns.body[16:18] == b"\x01\x01"
    na = icmp.ICMPv6(icmp.V6_NEIGHBOR_ADVERT, 0, b"\x60\x00\x00\x00",
                     ck.pack_address("2001:db8::2") + b"\x02\x01\x02\x00\x00\x00\x00\x02")
    adv = ether.decode_neighbor_advert(na)
    assert adv is not None and adv.solicited and adv.target_mac == "02:00:00:00:00:02"


def test_tcp_options_malformed_are_data() -> None:
    opts, ok = tcp.parse_options(b"\x02\x04\x05")  # MSS cut short
    assert opts == () and not ok
    opts, ok = tcp.parse_options(b"\x01\x08\x01")  # length 1 < 2
    assert opts == ((1, b""),) and not ok
    opts, ok = tcp.parse_options(b"\x01\x00\xff\xff")
    assert opts == ((1, b""), (0, b"")) and ok


@given(st.binary(max_size=120))
@settings(max_examples=400)
def test_decoders_never_raise(data: bytes) -> None:
    ip.decode_ip(data)
    ip.decode_ip(data, truncated_ok=True)
    tcp.decode_tcp(data)
    tcp.decode_tcp(data, truncated_ok=True)
    udp.decode_udp(data)
    icmp.decode_icmp(data)
    icmp.decode_icmpv6(data)
    ether.decode_arp(data)
    fast.parse_reply(data)
    for head in (b"\x45\x00", b"\x60\x00\x00\x00"):
        fast.parse_reply(head + data)


@given(st.binary(min_size=20, max_size=120), st.integers(0, 119))
@settings(max_examples=300)
def test_parse_reply_on_truncated_real_packets(tail: bytes, cut: int) -> None:
    for pkt in (SYN_V4, UDP_V6, ECHO_V4, ECHO_V6):
        fast.parse_reply(pkt[:cut])
        fast.parse_reply(pkt[:cut] + tail)


ports = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@given(ports, ports, u32, u32, st.integers(0, 0x1FF), ports, st.booleans())
def test_tcp_template_equals_codec(sport: int, dport: int, seq: int, ack: int, flags: int,
                                   window: int, v6: bool) -> None:
    src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("198.18.0.1", "198.18.0.2")
    tpl = fast.TcpTemplate(src, dst, flags, window=window, options=(tcp.mss(1460),))
    got = tpl.render(sport, dport, seq, ack)
    seg = tcp.TCP(sport, dport, seq, ack, flags, window, options=(tcp.mss(1460),)).encode(
        src, dst)
    if v6:
        assert got == ip.IPv6(src, dst, 6).encode(seg)
    else:
        head = got[:20]
        assert got[20:] == seg
        assert head[:10] == ip.IPv4(src, dst, 6).encode(seg)[:10]
    rep = fast.parse_reply(got)
    assert rep is not None and (rep.port, rep.our_port) == (sport, dport)  # as a reply
    assert (rep.seq, rep.ack, rep.flags, rep.window) == (seq, ack, flags, window)


@given(ports, ports, st.binary(max_size=64), st.booleans())
def test_udp_template_equals_codec(sport: int, dport: int, payload: bytes, v6: bool) -> None:
    src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("198.18.0.1", "198.18.0.2")
    got = fast.UdpTemplate(src, dst).render(sport, dport, payload)
    dgram = udp.UDP(sport, dport, payload).encode(src, dst)
    hlen = 40 if v6 else 20
    assert got[hlen:] == dgram
    pkt = ip.decode_ip(got)
    assert pkt is not None and pkt.payload == dgram
    rep = fast.parse_reply(got)
    assert rep is not None and rep.payload == payload


def test_cookie_is_keyed_and_deterministic() -> None:
    a = fast.Cookie(b"k" * 16)
    b = fast.Cookie(b"j" * 16)
    t = bytes([198, 18, 0, 2])
    assert a(t, 80, 40000) == a(t, 80, 40000)
    assert a(t, 80, 40000) != b(t, 80, 40000)
    assert len({a(t, p, 40000) for p in range(1000)}) > 990
    assert 0 <= a(t, 1, 2) < 2**32


def test_ipv4_rejects_bad_lengths() -> None:
    assert ip.decode_ipv4(SYN_V4[:-1]) is None  # shorter than total length
    assert ip.decode_ipv4(SYN_V4[:-1], truncated_ok=True) is not None
    bad_ihl = bytes([0x44]) + SYN_V4[1:]
    assert ip.decode_ipv4(bad_ihl) is None
    assert struct.unpack("!H", SYN_V4[2:4])[0] == len(SYN_V4)


@pytest.mark.parametrize(("src", "dst", "other"), [
    ("198.18.0.1", "198.18.0.2", "198.19.255.254"),
    ("2001:db8::1", "2001:db8::2", "2001:db8:ffff::fffe"),
])
def test_tcp_template_retarget_equals_a_fresh_template(src: str, dst: str, other: str) -> None:
    tpl = fast.TcpTemplate(src, dst, 0x02, options=(tcp.mss(1460),))
    head, base = tpl.retarget(ck.pack_address(other))
    fresh = fast.TcpTemplate(src, other, 0x02, options=(tcp.mss(1460),))
    assert head == fresh.head
    want = fresh.render(40000, 443, 0xDEADBEEF, 0)
    s = base + 40000 + 443 + 0xDEAD + 0xBEEF
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    _b, of, win, opts = tpl.fields
    got = head + tpl.pack(40000, 443, 0xDEADBEEF, 0, of, win, ~s & 0xFFFF, 0, opts)
    assert got == want
    with pytest.raises(ValueError):
        tpl.retarget(b"\x00" * (20 - len(ck.pack_address(dst))))
