"""ARP and ND frames against an independent implementation (scapy, test-only): our
requests are byte for byte what scapy builds; what scapy builds as replies we parse to the
same address and MAC."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portscope.packets import ether

s = pytest.importorskip("scapy.all")

AF6 = socket.AF_INET6
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
addr4 = st.integers(1, 2**32 - 2).map(lambda n: str(ipaddress.IPv4Address(n)))
addr6 = st.integers(1, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed)
macs = st.binary(min_size=6, max_size=6).map(ether.mac_text)


@SETTINGS
@given(macs, addr4, addr4)
def test_arp_request_is_scapys(mac: str, src: str, dst: str) -> None:
    theirs = s.raw(s.Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) /
                   s.ARP(op=1, hwsrc=mac, psrc=src, hwdst="00:00:00:00:00:00", pdst=dst))
    assert ether.arp_request_frame(mac, src, dst) == theirs


@SETTINGS
@given(macs, addr6, addr6)
def test_neighbor_solicitation_is_scapys(mac: str, src: str, target: str) -> None:
    group = ether.solicited_node(target)
    assert s.inet_pton(AF6, group) == s.in6_getnsma(s.inet_pton(AF6, target))
    theirs = s.raw(s.Ether(dst=s.in6_getnsmac(s.inet_pton(AF6, group)), src=mac) /
                   s.IPv6(src=src, dst=group, hlim=255) / s.ICMPv6ND_NS(tgt=target) /
                   s.ICMPv6NDOptSrcLLAddr(lladdr=mac))
    assert ether.neighbor_solicit_frame(mac, src, target) == theirs


@SETTINGS
@given(macs, macs, addr4, addr4)
def test_scapy_arp_reply_parsed(mac: str, ours: str, sender: str, target: str) -> None:
    frame = s.raw(s.Ether(dst=ours, src=mac) /
                  s.ARP(op=2, hwsrc=mac, psrc=sender, hwdst=ours, pdst=target))
    assert ether.parse_neighbor_frame(frame) == ether.NeighborReply("arp", sender, mac)
    request = s.raw(s.Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / s.ARP(op=1, psrc=sender))
    assert ether.parse_neighbor_frame(request) is None


@SETTINGS
@given(macs, macs, addr6, addr6, st.booleans())
def test_scapy_neighbor_advert_parsed(mac: str, eth_src: str, target: str, dst: str,
                                      with_option: bool) -> None:
    na = s.IPv6(src=target, dst=dst, hlim=255) / s.ICMPv6ND_NA(tgt=target, R=0, S=1, O=1)
    if with_option:
        na = na / s.ICMPv6NDOptDstLLAddr(lladdr=mac)
    frame = s.raw(s.Ether(dst="02:00:00:00:00:01", src=eth_src) / na)
    got = ether.parse_neighbor_frame(frame)
    assert got == ether.NeighborReply("nd", ipaddress.IPv6Address(target).compressed,
                                      mac if with_option else eth_src)
    routed = s.raw(s.Ether(dst="02:00:00:00:00:01", src=eth_src) /
                   s.IPv6(src=target, dst=dst, hlim=64) /
                   s.ICMPv6ND_NA(tgt=target))
    assert ether.parse_neighbor_frame(routed) is None  # hop limit 254 or less: off-link


def test_our_neighbor_advert_parsed_by_scapy() -> None:
    msg = ether.neighbor_advert("2001:db8::2", "02:00:00:00:00:02", solicited=True).encode(
        "2001:db8::2", "2001:db8::1")
    head = s.raw(s.IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=255, nh=58, plen=len(msg)))
    pkt = s.IPv6(head[:40] + msg)
    na = pkt[s.ICMPv6ND_NA]
    assert (na.tgt, na.S, na.O, na.R) == ("2001:db8::2", 1, 1, 0)
    assert pkt[s.ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:02"
    fresh = s.IPv6(s.raw(pkt))
    recomputed = fresh.copy()
    del recomputed[s.ICMPv6ND_NA].cksum
    assert s.IPv6(s.raw(recomputed))[s.ICMPv6ND_NA].cksum == fresh[s.ICMPv6ND_NA].cksum
