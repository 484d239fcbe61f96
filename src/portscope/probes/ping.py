"""Host discovery probes (nmap's default when privileged: ``-PE -PS443 -PA80 -PP``):
ICMP echo, TCP SYN to 443, TCP ACK to 80, ICMP timestamp (IPv4 only; IPv6 has none).
Pure: which reply means "up" and with which reason."""

from __future__ import annotations

from portscope.model import Reason
from portscope.packets.fast import (
    K_ECHO_REPLY,
    K_ICMP_ERROR,
    K_TCP,
    K_TIMESTAMP_REPLY,
    Reply,
)
from portscope.probes._icmp import icmp_reason

ECHO = "echo"
SYN_443 = "syn443"
ACK_80 = "ack80"
TIMESTAMP = "timestamp"
DEFAULT_PROBES = (ECHO, SYN_443, ACK_80, TIMESTAMP)
TCP_PORTS = {SYN_443: (443, 0x02), ACK_80: (80, 0x10)}


def probes_for(address: str) -> tuple[str, ...]:
    """The probes sent to *address* (no ICMP timestamp over IPv6)."""
    if ":" in address:
        return (ECHO, SYN_443, ACK_80)
    return DEFAULT_PROBES


def up_reason(rep: Reply) -> str | None:
    """Why *rep* (already validated as an answer to one of our probes) shows the host up;
    None when it does not (an ICMP error from a router on the way)."""
    if rep.kind == K_TCP:
        if rep.flags & 0x04:
            return Reason.RESET
        if rep.flags & 0x12 == 0x12:
            return Reason.SYN_ACK
        return None
    if rep.kind == K_ECHO_REPLY:
        return Reason.ECHO_REPLY
    if rep.kind == K_TIMESTAMP_REPLY:
        return Reason.TIMESTAMP_REPLY
    if rep.kind == K_ICMP_ERROR and rep.responder == rep.target:
        # the target itself answered (e.g. protocol or port unreachable): it is up
        return icmp_reason(rep)
    return None
