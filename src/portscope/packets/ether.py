"""Ethernet II, ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861) for on-link
host discovery."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from portscope.packets.csum import pack_address, unpack_address
from portscope.packets.icmp import V6_NEIGHBOR_ADVERT, V6_NEIGHBOR_SOLICIT, ICMPv6

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
