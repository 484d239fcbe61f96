"""Sans-IO packet codecs: IPv4, IPv6, TCP (with options), UDP, ICMP, ICMPv6, Ethernet/ARP.

Nothing here touches a socket or a clock. Encoders take field values and return bytes;
decoders take bytes and return frozen dataclasses, or ``None`` when the bytes are not a
well-formed packet of that kind (a bad packet from the network is data, never an
exception). Addresses are text (``"198.18.0.2"``, ``"2001:db8::2"``) at this API; the
engines' hot paths use :mod:`portscope.packets.fast` (packed templates, one-call reply
parsing), which is tested against these decoders.

Modules: :mod:`csum` (Internet checksum, pseudo-headers, RFC 1624 incremental
update), :mod:`ip` (IPv4/IPv6 headers, extension-header walking), :mod:`tcp` (segments and
options), :mod:`udp`, :mod:`icmp` (ICMP and ICMPv6, quoted packets of errors),
:mod:`ether` (Ethernet, ARP, ND), :mod:`fast` (templates and reply parsing).
"""

from portscope.packets.csum import checksum, incremental_update, pseudo_header_sum
from portscope.packets.icmp import ICMP, ICMPv6, Quoted, decode_icmp, decode_icmpv6
from portscope.packets.ip import IPv4, IPv6, Packet, decode_ip, decode_ipv4, decode_ipv6
from portscope.packets.tcp import TCP, TCPFlags, decode_tcp, format_options, parse_options
from portscope.packets.udp import UDP, decode_udp

__all__ = [
    "ICMP",
    "TCP",
    "UDP",
    "ICMPv6",
    "IPv4",
    "IPv6",
    "Packet",
    "Quoted",
    "TCPFlags",
    "checksum",
    "decode_icmp",
    "decode_icmpv6",
    "decode_ip",
    "decode_ipv4",
    "decode_ipv6",
    "decode_tcp",
    "decode_udp",
    "format_options",
    "incremental_update",
    "parse_options",
    "pseudo_header_sum",
]
