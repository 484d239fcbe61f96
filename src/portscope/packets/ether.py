"""Ethernet II, ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861) for on-link
host discovery (nmap's ``-PR``): field codecs, whole request frames as the engine sends
them (:func:`arp_request_frame`, :func:`neighbor_solicit_frame`) and one-call parsing of
what comes back (:func:`parse_neighbor_frame`)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from portscope.packets.csum import checksum, pack_address, pseudo_header_sum, unpack_address
from portscope.packets.icmp import (
    V6_NEIGHBOR_ADVERT,
    V6_NEIGHBOR_SOLICIT,
    ICMPv6,
    decode_icmpv6,
)

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = "ff:ff:ff:ff:ff:ff"
ARP_REQUEST = 1
ARP_REPLY = 2
ND_OPT_SOURCE_LL = 1
ND_OPT_TARGET_LL = 2

_ARP = struct.Struct("!HHBBH6s4s6s4s")


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True, slots=True)
class Ethernet:
    dst: str
    src: str
    ethertype: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return mac_bytes(self.dst) + mac_bytes(self.src) + \
            self.ethertype.to_bytes(2, "big") + self.payload


def decode_ethernet(data: bytes | bytearray | memoryview) -> Ethernet | None:
    data = bytes(data)
    if len(data) < 14:
        return None
    return Ethernet(mac_text(data[:6]), mac_text(data[6:12]),
                    int.from_bytes(data[12:14], "big"), data[14:])


@dataclass(frozen=True, slots=True)
class ARP:
    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str

    def encode(self) -> bytes:
        return _ARP.pack(1, ETH_P_IP, 6, 4, self.op, mac_bytes(self.sender_mac),
                         pack_address(self.sender_ip), mac_bytes(self.target_mac),
                         pack_address(self.target_ip))


def arp_request(sender_mac: str, sender_ip: str, target_ip: str) -> ARP:
    return ARP(ARP_REQUEST, sender_mac, sender_ip, "00:00:00:00:00:00", target_ip)


def decode_arp(data: bytes | bytearray | memoryview) -> ARP | None:
    data = bytes(data)
    if len(data) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    return ARP(op, mac_text(sha), unpack_address(spa), mac_text(tha), unpack_address(tpa))


def solicited_node(address: str) -> str:
    """The solicited-node multicast address of *address* (ff02::1:ffXX:XXXX)."""
    low = pack_address(address)[-3:]
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + low))


def multicast_mac(address6: str) -> str:
    """Ethernet multicast MAC of an IPv6 multicast address (33:33 + low 32 bits)."""
    return mac_text(b"\x33\x33" + pack_address(address6)[-4:])


def neighbor_solicit(target: str, source_mac: str) -> ICMPv6:
    body = pack_address(target) + bytes((ND_OPT_SOURCE_LL, 1)) + mac_bytes(source_mac)
    return ICMPv6(V6_NEIGHBOR_SOLICIT, 0, b"\x00\x00\x00\x00", body)


@dataclass(frozen=True, slots=True)
class NeighborAdvert:
    target: str
    router: bool
    solicited: bool
    override: bool
    target_mac: str | None


def decode_neighbor_advert(msg: ICMPv6) -> NeighborAdvert | None:
    if msg.type != V6_NEIGHBOR_ADVERT or msg.code != 0 or len(msg.body) < 16:
        return None
    flags = msg.rest[0]
    mac = None
    opts = msg.body[16:]
    i = 0
    while i + 2 <= len(opts):
        kind, length = opts[i], opts[i + 1] * 8
        if length == 0 or i + length > len(opts):
            break
        if kind == ND_OPT_TARGET_LL and length >= 8:
            mac = mac_text(opts[i + 2:i + 8])
        i += length
    return NeighborAdvert(unpack_address(msg.body[:16]), bool(flags & 0x80),
                          bool(flags & 0x40), bool(flags & 0x20), mac)


def neighbor_advert(target: str, target_mac: str | None, *, router: bool = False,
                    solicited: bool = True, override: bool = True) -> ICMPv6:
    """A Neighbor Advertisement for *target* (with a target link-layer address option when
    *target_mac* is given)."""
    flags = (0x80 if router else 0) | (0x40 if solicited else 0) | (0x20 if override else 0)
    body = pack_address(target)
    if target_mac is not None:
        body += bytes((ND_OPT_TARGET_LL, 1)) + mac_bytes(target_mac)
    return ICMPv6(V6_NEIGHBOR_ADVERT, 0, bytes((flags, 0, 0, 0)), body)


# -- whole frames, as the on-link discovery engine sends and receives them ----------------

ND_HOP_LIMIT = 255  # RFC 4861: ND messages are sent and accepted only with hop limit 255
_V6_HEAD = struct.Struct("!IHBB16s16s")


def arp_request_frame(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    """Ethernet broadcast frame carrying an ARP who-has *target_ip* (42 bytes; the driver
    pads it to the Ethernet minimum)."""
    return Ethernet(BROADCAST, src_mac, ETH_P_ARP,
                    arp_request(src_mac, src_ip, target_ip).encode()).encode()


def neighbor_solicit_frame(src_mac: str, src_ip: str, target: str) -> bytes:
    """Ethernet frame carrying an ICMPv6 Neighbor Solicitation for *target*, sent from
    *src_ip* to the target's solicited-node multicast group with hop limit 255."""
    group = solicited_node(target)
    msg = neighbor_solicit(target, src_mac).encode(src_ip, group)
    head = _V6_HEAD.pack(6 << 28, len(msg), 58, ND_HOP_LIMIT, pack_address(src_ip),
                         pack_address(group))
    return Ethernet(multicast_mac(group), src_mac, ETH_P_IPV6, head + msg).encode()


@dataclass(frozen=True, slots=True)
class NeighborReply:
    """What an on-link host said about itself: *address* is at *mac*."""

    kind: str  # "arp" or "nd"
    address: str
    mac: str


def parse_neighbor_frame(frame: bytes | bytearray | memoryview) -> NeighborReply | None:
    """An ARP reply or a Neighbor Advertisement in an Ethernet frame, else None.

    ARP: opcode 2, Ethernet/IPv4; the answer is the sender's (IP, MAC). ND: an ICMPv6 type
    136 with hop limit 255 and a correct checksum; the answer is the advertised target with
    its target link-layer address option (the frame's source MAC when the option is
    missing). Anything else, or anything malformed, is None."""
    eth = decode_ethernet(frame)
    if eth is None:
        return None
    if eth.ethertype == ETH_P_ARP:
        arp = decode_arp(eth.payload)
        if arp is None or arp.op != ARP_REPLY:
            return None
        return NeighborReply("arp", arp.sender_ip, arp.sender_mac)
    if eth.ethertype != ETH_P_IPV6 or len(eth.payload) < 40 + 24:
        return None
    first, plen, nxt, hops, src, dst = _V6_HEAD.unpack_from(eth.payload)
    if first >> 28 != 6 or nxt != 58 or hops != ND_HOP_LIMIT or 40 + plen > len(eth.payload):
        return None
    body = eth.payload[40:40 + plen]
    if checksum(body, pseudo_header_sum(src, dst, 58, len(body))) != 0:
        return None
    msg = decode_icmpv6(body)
    adv = decode_neighbor_advert(msg) if msg is not None else None
    if adv is None:
        return None
    return NeighborReply("nd", adv.target, adv.target_mac or eth.src)
