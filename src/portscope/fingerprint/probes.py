"""The OS-detection probes (pure): what to send, and which reply answers which probe.

Eleven packets per host, IPv4:

* ``S1``..``S3``: SYNs to an open TCP port, 100 ms apart, from one source port, with
  the same options (window scale, MSS, timestamp, SACK permitted): the SYN/ACKs show TTL,
  DF, window, option order, and over time the IP-ID sequence and the timestamp clock;
  ``S4``, from another port: is the timestamp offset chosen per connection?
* ``ECN``: a SYN with ECE and CWR: does the stack agree to explicit congestion notice?
* ``A_OPEN``: an ACK to the open port without a connection: the RST it provokes.
* ``S_CLOSED``, ``A_CLOSED``, ``FPU_CLOSED``: SYN, ACK and FIN+PSH+URG to a closed port.
* ``IE``: an ICMP echo request with a non-zero code (is the code echoed?) and DF set.
* ``U1``: a UDP datagram to a closed port: the ICMP port unreachable, and how much of
  our datagram it quotes.

Replies are matched by (source port, destination port), and for S1..S3 by their ack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from portscope.packets import tcp as tcpmod
from portscope.packets.icmp import ICMP
from portscope.packets.ip import FLAG_DF, IPv4
from portscope.packets.tcp import TCP, TCPFlags
from portscope.packets.udp import UDP

TCP_PROBES = ("S1", "S2", "S3", "S4", "ECN", "A_OPEN", "S_CLOSED", "A_CLOSED",
              "FPU_CLOSED")
ACK_VALUE = 0x5A5A5A5A  # the ack of the ACK probes: a RST answering one carries it as seq
SYN_OPTIONS_DESC = "W10 N M5B4 T S"
PROBE_SPACING = 0.1  # seconds between S1, S2, S3
ECHO_CODE = 9
UDP_PAYLOAD = b"C" * 300


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    packet: bytes  # the IPv4 packet
    proto: int  # 6, 17, 1
    sport: int = 0
    dport: int = 0
    seq: int = 0
    ident: int = 0  # ICMP echo identifier


def _syn_options(tsval: int) -> tuple[tcpmod.TCPOption, ...]:
    return (tcpmod.wscale(10), tcpmod.nop(), tcpmod.mss(1460), tcpmod.timestamp(tsval, 0),
            tcpmod.sack_permitted())


def build_probes(src: str, dst: str, open_port: int, closed_port: int, *, base_port: int,
                 seq: int, ip_id: int, tsval: int, icmp_ident: int) -> list[Probe]:
    """The probes in sending order. *seq*, *ip_id*, *tsval* and *icmp_ident* come from
    the caller (random in real use, fixed in tests). ``S1``..``S3`` share one source port
    (a stack that keys its timestamp offset on the connection keeps it for them, so the
    clock rate can be measured; replies are told apart by their ack); ``S4`` comes from
    another port, to see whether the offset is per connection."""
    out: list[Probe] = []

    def tcp_probe(n: int, port_slot: int, name: str, dport: int, flags: int, *, window: int,
                  options: tuple[tcpmod.TCPOption, ...] = (), ack: int = 0) -> None:
        sport = base_port + port_slot
        s = (seq + n * 0x01000193) & 0xFFFFFFFF
        seg = TCP(sport=sport, dport=dport, seq=s, ack=ack, flags=flags, window=window,
                  options=options).encode(src, dst)
        ip = IPv4(src=src, dst=dst, proto=6, ttl=64, ident=(ip_id + n) & 0xFFFF)
        out.append(Probe(name, ip.encode(seg), 6, sport, dport, s))

    for i in range(3):
        tcp_probe(i, 0, f"S{i + 1}", open_port, TCPFlags.SYN, window=1024,
                  options=_syn_options(tsval + i * 100))
    tcp_probe(3, 1, "S4", open_port, TCPFlags.SYN, window=1024,
              options=_syn_options(tsval + 300))
    tcp_probe(4, 2, "ECN", open_port, TCPFlags.SYN | TCPFlags.ECE | TCPFlags.CWR, window=3,
              options=_syn_options(tsval + 400))
    tcp_probe(5, 3, "A_OPEN", open_port, TCPFlags.ACK, window=32768, ack=ACK_VALUE)
    tcp_probe(6, 4, "S_CLOSED", closed_port, TCPFlags.SYN, window=31337,
              options=_syn_options(tsval + 500))
    tcp_probe(7, 5, "A_CLOSED", closed_port, TCPFlags.ACK, window=32768, ack=ACK_VALUE)
    tcp_probe(8, 6, "FPU_CLOSED", closed_port,
              TCPFlags.FIN | TCPFlags.PSH | TCPFlags.URG, window=65535)
    echo = ICMP(type=8, code=ECHO_CODE, rest=struct.pack("!HH", icmp_ident & 0xFFFF, 295),
                body=bytes(120))
    ip = IPv4(src=src, dst=dst, proto=1, ttl=64, ident=(ip_id + 9) & 0xFFFF, flags=FLAG_DF)
    out.append(Probe("IE", ip.encode(echo.encode()), 1, ident=icmp_ident & 0xFFFF))
    udp = UDP(sport=base_port + 7, dport=closed_port, payload=UDP_PAYLOAD).encode(src, dst)
    ip = IPv4(src=src, dst=dst, proto=17, ttl=64, ident=(ip_id + 10) & 0xFFFF)
    out.append(Probe("U1", ip.encode(udp), 17, base_port + 7, closed_port))
    return out


def match_tcp(probes: list[Probe], sport: int, dport: int, ack: int) -> Probe | None:
    """The TCP probe a reply from port *sport* to our port *dport* answers; probes that
    share ports are told apart by the reply's ack (our seq + 1, or our seq)."""
    same = [p for p in probes if p.proto == 6 and p.sport == dport and p.dport == sport]
    if len(same) <= 1:
        return same[0] if same else None
    for p in same:
        if ack in ((p.seq + 1) & 0xFFFFFFFF, p.seq):
            return p
    return None
