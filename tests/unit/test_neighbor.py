"""On-link discovery without a network: ARP/ND frames (exact bytes, parsing, malformed
input), the rtnetlink route codec, the on-link decision, the BPF programs (run by a small
classic-BPF interpreter), and the discovery loop over fake link sockets."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portscope.engine.discovery import HostDiscovery
from portscope.engine.neighbor import NeighborDiscovery, arp_filter, nd_filter, plan
from portscope.engine.rawsock import PACKET_OUTGOING
from portscope.engine.timing import template
from portscope.packets import ether, netlink
from portscope.packets.csum import checksum, pseudo_header_sum
from portscope.probes.ping import (
    ARPHRD_ETHER,
    IFF_LOOPBACK,
    IFF_NOARP,
    IFF_UP,
    Link,
    NeighborPath,
    OnlinkFilter,
    connected_networks,
    maybe_onlink,
    neighbor_path,
)

OUR_MAC = "02:00:00:00:00:01"
HOST_MAC = "02:00:00:00:00:02"
PACKET_HOST = 0


# -- frames ----------------------------------------------------------------------------------


def test_arp_request_frame_exact_bytes() -> None:
    frame = ether.arp_request_frame(OUR_MAC, "198.18.0.1", "198.18.0.2")
    assert frame.hex() == (
        "ffffffffffff" "020000000001" "0806"  # broadcast, from us, ARP
        "0001" "0800" "06" "04" "0001"  # Ethernet/IPv4, request
        "020000000001" "c6120001"  # sender: us
        "000000000000" "c6120002"  # target: unknown MAC, the address asked for
    )


def test_neighbor_solicit_frame_layout() -> None:
    frame = ether.neighbor_solicit_frame(OUR_MAC, "2001:db8::1", "2001:db8::1:2345")
    assert frame[:6] == bytes.fromhex("3333ff012345")  # solicited-node group's MAC
    assert frame[6:12] == bytes.fromhex("020000000001") and frame[12:14] == b"\x86\xdd"
    ip6 = frame[14:54]
    assert ip6[0] >> 4 == 6 and ip6[6] == 58 and ip6[7] == 255
    assert struct.unpack("!H", ip6[4:6])[0] == len(frame) - 54 == 32
    assert ip6[24:40] == socket.inet_pton(socket.AF_INET6, "ff02::1:ff01:2345")
    msg = frame[54:]
    assert msg[0] == 135 and msg[1] == 0 and msg[4:8] == b"\x00" * 4
    assert msg[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1:2345")
    assert msg[24:32] == bytes.fromhex("0101020000000001")  # source link-layer address
    assert checksum(msg, pseudo_header_sum(ip6[8:24], ip6[24:40], 58, len(msg))) == 0


def arp_reply(sender_ip: str = "198.18.0.2", mac: str = HOST_MAC) -> bytes:
    arp = ether.ARP(ether.ARP_REPLY, mac, sender_ip, OUR_MAC, "198.18.0.1")
    return ether.Ethernet(OUR_MAC, mac, ether.ETH_P_ARP, arp.encode()).encode()


def na_frame(target: str = "2001:db8::2", mac: str | None = HOST_MAC, *, hops: int = 255,
             src: str = "2001:db8::2", eth_src: str = HOST_MAC, corrupt: bool = False) -> bytes:
    msg = ether.neighbor_advert(target, mac).encode(src, "2001:db8::1")
    if corrupt:
        msg = msg[:-1] + bytes([msg[-1] ^ 1])
    head = struct.pack("!IHBB16s16s", 6 << 28, len(msg), 58, hops,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, "2001:db8::1"))
    return ether.Ethernet(OUR_MAC, eth_src, ether.ETH_P_IPV6, head + msg).encode()


def test_parse_neighbor_frames() -> None:
    assert ether.parse_neighbor_frame(arp_reply()) == ether.NeighborReply(
        "arp", "198.18.0.2", HOST_MAC)
    assert ether.parse_neighbor_frame(na_frame()) == ether.NeighborReply(
        "nd", "2001:db8::2", HOST_MAC)
    # no target link-layer option: the frame's source MAC
    assert ether.parse_neighbor_frame(na_frame(mac=None, eth_src="02:00:00:00:00:09")) == \
        ether.NeighborReply("nd", "2001:db8::2", "02:00:00:00:00:09")
    # what is not an answer
    req = ether.arp_request_frame(HOST_MAC, "198.18.0.2", "198.18.0.1")
    assert ether.parse_neighbor_frame(req) is None  # a request, not a reply
    assert ether.parse_neighbor_frame(na_frame(hops=64)) is None  # forwarded: not on-link
    assert ether.parse_neighbor_frame(na_frame(corrupt=True)) is None
    ns = ether.neighbor_solicit_frame(HOST_MAC, "2001:db8::2", "2001:db8::1")
    assert ether.parse_neighbor_frame(ns) is None
    assert ether.parse_neighbor_frame(arp_reply()[:30]) is None
    assert ether.parse_neighbor_frame(na_frame()[:70]) is None


@given(st.binary(max_size=120))
@settings(max_examples=300)
def test_parse_neighbor_frame_never_raises(data: bytes) -> None:
    ether.parse_neighbor_frame(data)
    for head in (arp_reply()[:14], na_frame()[:14], na_frame()[:54]):
        ether.parse_neighbor_frame(head + data)
    netlink.decode_route(data)
    netlink.decode_dump(data)


# -- rtnetlink --------------------------------------------------------------------------------


def test_route_request_exact_bytes() -> None:
    if struct.pack("=H", 1) != b"\x01\x00":
        pytest.skip("the exact bytes below are for a little-endian host")
    assert netlink.route_request("198.18.0.2", 7).hex() == (
        "24000000" "1a00" "0100" "07000000" "00000000"  # nlmsghdr: 36 bytes, GETROUTE, REQUEST
        "02" "20" "00" "00" "00" "00" "00" "00" "00000000"  # rtmsg: AF_INET, /32
        "0800" "0100" "c6120002"  # RTA_DST 198.18.0.2
    )
    req6 = netlink.route_request("2001:db8::2", 8)
    assert len(req6) == 16 + 12 + 20 and req6[16] == netlink.AF_INET6 and req6[17] == 128
    assert netlink.dump_request(netlink.AF_INET6, 9).hex() == (
        "1c000000" "1a00" "0103" "09000000" "00000000" "0a" + "00" * 7 + "00000000")


def test_route_reply_round_trip_and_errors() -> None:
    r = netlink.Route(netlink.RTN_UNICAST, 5, None, "198.18.0.1", 254)
    assert netlink.decode_route(netlink.route_reply(r, 3), 3) == netlink.Route(
        netlink.RTN_UNICAST, 5, None, "198.18.0.1", 254, None, 32)
    via = netlink.Route(netlink.RTN_UNICAST, 2, "192.0.2.1", "192.0.2.2", 254)
    got = netlink.decode_route(netlink.route_reply(via, 4), 4)
    assert isinstance(got, netlink.Route) and got.gateway == "192.0.2.1"
    assert netlink.decode_route(netlink.route_reply(r, 3), 99) is None  # another request
    err = struct.pack("=IHHII", 36, netlink.NLMSG_ERROR, 0, 5, 0) + struct.pack("=i", -113)
    err += b"\x00" * 16
    assert netlink.decode_route(err, 5) == netlink.RouteError(113)
    assert netlink.decode_route(b"\x10\x00\x00\x00") is None


def test_route_dump_decoding() -> None:
    a = netlink.Route(netlink.RTN_UNICAST, 5, None, "198.18.0.1", 254, "198.18.0.0", 30)
    b = netlink.Route(netlink.RTN_UNICAST, 6, None, "2001:db8::1", 254, "2001:db8::", 64)
    c = netlink.Route(netlink.RTN_UNICAST, 2, "192.0.2.1", None, 254, "0.0.0.0", 0)
    data = (netlink.route_reply(a, 1) + netlink.route_reply(b, 1, family=netlink.AF_INET6)
            + netlink.route_reply(c, 1))
    routes, done = netlink.decode_dump(data)
    assert routes == [a, b, c] and not done
    routes, done = netlink.decode_dump(struct.pack("=IHHII", 20, netlink.NLMSG_DONE, 2, 1, 0)
                                       + b"\x00" * 4)
    assert routes == [] and done
    nets = connected_networks([a, b, c])
    assert [str(n) for n in nets] == ["198.18.0.0/30", "2001:db8::/64"]
    f = OnlinkFilter(nets)
    assert f("198.18.0.2") and f("2001:db8::ffff") and not f("198.18.0.5")
    assert not f("192.0.2.9") and not f("not an address")
    assert maybe_onlink("198.18.0.3", nets)
    # a device-only default route makes everything a candidate
    dev_default = netlink.Route(netlink.RTN_UNICAST, 7, None, "10.0.0.1", 254, "0.0.0.0", 0)
    assert maybe_onlink("203.0.113.5", connected_networks([dev_default]))


# -- the on-link decision ------------------------------------------------------------------------

ETH0 = Link(5, "eth0", OUR_MAC, ARPHRD_ETHER, IFF_UP | 0x1000)
ONLINK4 = netlink.Route(netlink.RTN_UNICAST, 5, None, "198.18.0.1", 254)
ONLINK6 = netlink.Route(netlink.RTN_UNICAST, 5, None, "2001:db8::1", 254)


def test_neighbor_path_on_link() -> None:
    assert neighbor_path("198.18.0.2", ONLINK4, ETH0) == NeighborPath(
        "arp", 5, "eth0", OUR_MAC, "198.18.0.1")
    assert neighbor_path("2001:db8::2", ONLINK6, ETH0) == NeighborPath(
        "nd", 5, "eth0", OUR_MAC, "2001:db8::1")


@pytest.mark.parametrize(("address", "route", "link"), [
    ("198.18.0.2", netlink.Route(1, 5, "198.18.0.9", "198.18.0.1"), ETH0),  # via a gateway
    ("198.18.0.1", netlink.Route(netlink.RTN_LOCAL, 1, None, "198.18.0.1"), ETH0),  # our own
    ("198.18.0.2", netlink.RouteError(113), ETH0),  # unreachable
    ("198.18.0.2", None, ETH0),
    ("198.18.0.2", ONLINK4, None),  # interface gone
    ("198.18.0.2", ONLINK4, Link(5, "lo", "00:00:00:00:00:00", 772, IFF_UP | IFF_LOOPBACK)),
    ("198.18.0.2", ONLINK4, Link(5, "tun0", "", 65534, IFF_UP | IFF_NOARP)),  # no link layer
    ("198.18.0.2", ONLINK4, Link(5, "wg0", OUR_MAC, ARPHRD_ETHER, IFF_UP | IFF_NOARP)),
    ("198.18.0.2", ONLINK4, Link(5, "eth0", OUR_MAC, ARPHRD_ETHER, 0)),  # down
    ("198.18.0.2", ONLINK4, Link(6, "eth1", OUR_MAC, ARPHRD_ETHER, IFF_UP)),  # other oif
    ("198.18.0.2", netlink.Route(1, 5, None, None), ETH0),  # no source address
    ("198.18.0.2", ONLINK6, ETH0),  # family mismatch
    ("224.0.0.1", netlink.Route(1, 5, None, "198.18.0.1"), ETH0),
    ("ff02::1", ONLINK6, ETH0),
])
def test_neighbor_path_off_link(address: str, route: object, link: Link | None) -> None:
    assert neighbor_path(address, route, link) is None  # type: ignore[arg-type]


def test_plan_with_fake_lookup() -> None:
    routes: dict[str, netlink.Route | netlink.RouteError] = {
        "198.18.0.2": ONLINK4, "2001:db8::2": ONLINK6,
        "203.0.113.9": netlink.Route(1, 5, "198.18.0.9", "198.18.0.1"),
        "198.19.0.1": netlink.RouteError(113)}
    onlink, offlink = plan(list(routes), lookup=routes.get, links={5: ETH0}.get)
    assert set(onlink) == {"198.18.0.2", "2001:db8::2"} and onlink["2001:db8::2"].kind == "nd"
    assert offlink == ["203.0.113.9", "198.19.0.1"]


# -- BPF ---------------------------------------------------------------------------------------


def run_bpf(prog: list[tuple[int, int, int, int]], pkt: bytes, pkttype: int) -> int:
    """A classic BPF interpreter for what our programs use (ld abs w/h/b, ancillary
    pkttype, jeq, ret k)."""
    pc, acc = 0, 0
    for _ in range(len(prog) + 1):
        code, jt, jf, k = prog[pc]
        if code in (0x20, 0x28, 0x30):
            if k == (-0x1000 + 4) & 0xFFFFFFFF:
                acc = pkttype
            else:
                size = {0x20: 4, 0x28: 2, 0x30: 1}[code]
                if k + size > len(pkt):
                    return 0
                acc = int.from_bytes(pkt[k:k + size], "big")
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x}")
    raise AssertionError("program does not end")


def test_bpf_programs_accept_only_replies() -> None:
    arp, nd = arp_filter(), nd_filter()
    assert run_bpf(arp, arp_reply(), PACKET_HOST) > 0
    assert run_bpf(arp, arp_reply(), PACKET_OUTGOING) == 0
    assert run_bpf(arp, ether.arp_request_frame(HOST_MAC, "198.18.0.2", "198.18.0.1"),
                   PACKET_HOST) == 0
    assert run_bpf(arp, na_frame(), PACKET_HOST) == 0
    assert run_bpf(nd, na_frame(), PACKET_HOST) > 0
    assert run_bpf(nd, na_frame(), PACKET_OUTGOING) == 0
    assert run_bpf(nd, na_frame(hops=64), PACKET_HOST) == 0
    assert run_bpf(nd, ether.neighbor_solicit_frame(HOST_MAC, "2001:db8::2", "2001:db8::1"),
                   PACKET_HOST) == 0
    assert run_bpf(nd, arp_reply(), PACKET_HOST) == 0
    assert run_bpf(nd, b"\x00" * 20, PACKET_HOST) == 0


# -- the discovery loop over fake sockets ------------------------------------------------------


class FakeLink:
    """A link where some hosts answer: *answers* maps an address to (MAC, which request
    numbers it answers: 1 = the first)."""

    def __init__(self, ifname: str, kind: str, answers: dict[str, tuple[str, set[int]]],
                 extra: bytes | None = None) -> None:
        self.ifname, self.kind, self.answers, self.extra = ifname, kind, answers, extra
        self.a, self.b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.a.setblocking(False)
        self.sent: list[bytes] = []
        self.asked: dict[str, int] = {}

    def send(self, frame: bytes) -> int:
        self.sent.append(frame)
        if self.kind == "arp":
            req = ether.decode_arp(ether.decode_ethernet(frame).payload)  # type: ignore[union-attr]
            assert req is not None
            target = req.target_ip
        else:
            target = socket.inet_ntop(socket.AF_INET6, frame[62:78])
        self.asked[target] = self.asked.get(target, 0) + 1
        if self.extra is not None:
            self.b.send(self.extra)
        mac, which = self.answers.get(target, ("", set()))
        if self.asked[target] in which:
            self.b.send(arp_reply(target, mac) if self.kind == "arp" else
                        na_frame(target, mac, src=target))
        return 0

    def recv_into(self, buf: bytearray) -> int:
        try:
            return self.a.recv_into(buf)
        except BlockingIOError:
            return 0

    def fileno(self) -> int:
        return self.a.fileno()

    def close(self) -> None:
        self.a.close()
        self.b.close()


def test_discovery_retries_silent_hosts_and_records_macs() -> None:
    answers = {"198.18.0.2": (HOST_MAC, {1}), "198.18.0.3": ("02:00:00:00:00:03", {2}),
               "2001:db8::2": (HOST_MAC, {1})}
    links: dict[tuple[str, str], FakeLink] = {}

    def factory(ifname: str, kind: str) -> FakeLink:
        links[(ifname, kind)] = FakeLink(ifname, kind, answers)
        return links[(ifname, kind)]

    p4 = NeighborPath("arp", 5, "eth0", OUR_MAC, "198.18.0.1")
    p6 = NeighborPath("nd", 5, "eth0", OUR_MAC, "2001:db8::1")
    paths = {"198.18.0.2": p4, "198.18.0.3": p4, "198.18.0.4": p4, "2001:db8::2": p6,
             "2001:db8::3": p6}
    nd = NeighborDiscovery(paths, template(5), level=5, socket_factory=factory)  # type: ignore[arg-type]
    t0 = time.monotonic()
    got = nd.run()
    assert time.monotonic() - t0 < 3
    assert {a: (x.reason, x.mac) for a, x in got.items()} == {
        "198.18.0.2": ("arp-response", HOST_MAC),
        "198.18.0.3": ("arp-response", "02:00:00:00:00:03"),  # answered the retry
        "2001:db8::2": ("nd-response", HOST_MAC),
    }
    arp, nd6 = links[("eth0", "arp")], links[("eth0", "nd")]
    # answered hosts are not asked again; silent ones twice (nmap's two tries)
    assert arp.asked == {"198.18.0.2": 1, "198.18.0.3": 2, "198.18.0.4": 2}
    assert nd6.asked == {"2001:db8::2": 1, "2001:db8::3": 2}
    assert nd.stats.probes_sent == 8 and nd.stats.retransmissions == 3
    assert nd.stats.replies == 3
    assert arp.a.fileno() == -1  # sockets closed


def test_a_reply_on_another_link_is_not_an_answer() -> None:
    """.2 is asked on eth0, where nobody answers; a reply for .2 that shows up on eth1
    (where .6 is asked) does not make it up."""
    def factory(ifname: str, kind: str) -> FakeLink:
        if ifname == "eth1":
            return FakeLink(ifname, kind, {"198.18.0.6": (HOST_MAC, {1})},
                            extra=arp_reply("198.18.0.2", "02:00:00:00:00:66"))
        return FakeLink(ifname, kind, {})

    paths = {"198.18.0.2": NeighborPath("arp", 5, "eth0", OUR_MAC, "198.18.0.1"),
             "198.18.0.6": NeighborPath("arp", 6, "eth1", OUR_MAC, "198.18.0.5")}
    nd = NeighborDiscovery(paths, template(5), level=5, socket_factory=factory)  # type: ignore[arg-type]
    got = nd.run()
    assert {a: x.mac for a, x in got.items()} == {"198.18.0.6": HOST_MAC}


def test_host_discovery_under_pn_asks_only_on_link_targets() -> None:
    def factory(ifname: str, kind: str) -> FakeLink:
        return FakeLink(ifname, kind, {"198.18.0.2": (HOST_MAC, {1})})

    p4 = NeighborPath("arp", 5, "eth0", OUR_MAC, "198.18.0.1")

    def planner(addrs: list[str]) -> tuple[dict[str, NeighborPath], list[str]]:
        return ({a: p4 for a in addrs if a.startswith("198.18.0.")},
                [a for a in addrs if not a.startswith("198.18.0.")])

    hd = HostDiscovery(["198.18.0.2", "198.18.0.3", "203.0.113.7"], template(5), level=5,
                       ip_probes=False, planner=planner,
                       link_factory=factory)  # type: ignore[arg-type]
    got = hd.run()
    assert {a: (h.reason, h.mac) for a, h in got.items()} == {
        "198.18.0.2": ("arp-response", HOST_MAC)}
    assert hd.offlink == ["203.0.113.7"]  # not probed at all: -Pn takes it as up
    assert hd.stats.probes_sent == 3  # .2 once, .3 twice; nothing to 203.0.113.7
