"""Parser of Linux's socket tables in ``/proc/net/{tcp,tcp6,udp,udp6}`` (pure: text in).

Each line after the header is::

    sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt  uid timeout inode ...
     0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000  106       0 6937 ...

Addresses are the raw ``__be32`` words printed as host-order hexadecimal integers, so
their bytes are reversed on a little-endian machine (``0100007F`` = 127.0.0.1); IPv6
addresses are four such words. Ports are plain hexadecimal. ``st`` is the kernel's TCP
state number (also used for UDP: 07 "close" = unconnected, 01 = connected).

Lines that do not parse (truncated reads, a hostile or corrupted file) are skipped and
counted, never raised: a bad line is data.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from portscope.model import Family, ListeningSocket, Protocol

Byteorder = Literal["little", "big"]

# include/net/tcp_states.h
TCP_STATES = {
    0x01: "established",
    0x02: "syn-sent",
    0x03: "syn-recv",
    0x04: "fin-wait-1",
    0x05: "fin-wait-2",
    0x06: "time-wait",
    0x07: "close",
    0x08: "close-wait",
    0x09: "last-ack",
    0x0A: "listen",
    0x0B: "closing",
    0x0C: "new-syn-recv",
    0x0D: "bound-inactive",
}
TCP_LISTEN = 0x0A
TCP_CLOSE = 0x07

FILES: dict[str, tuple[Protocol, Family]] = {
    "tcp": (Protocol.TCP, Family.IPV4),
    "tcp6": (Protocol.TCP, Family.IPV6),
    "udp": (Protocol.UDP, Family.IPV4),
    "udp6": (Protocol.UDP, Family.IPV6),
}

_ENTRY = re.compile(
    r"^\s*(?P<sl>\d+):\s+"
    r"(?P<laddr>[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):(?P<lport>[0-9A-Fa-f]{4})\s+"
    r"(?P<raddr>[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):(?P<rport>[0-9A-Fa-f]{4})\s+"
    r"(?P<st>[0-9A-Fa-f]{2})\s+"
    r"[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8}\s+"  # tx_queue:rx_queue
    r"[0-9A-Fa-f]{2}:[0-9A-Fa-f]{8}\s+"  # tr:tm->when
    r"[0-9A-Fa-f]{8}\s+"  # retrnsmt
    r"(?P<uid>\d+)\s+"
    r"\d+\s+"  # timeout
    r"(?P<inode>\d+)(?:\s|$)"
)


@dataclass(frozen=True, slots=True)
class ProcSocket:
    """One line of a /proc/net socket table."""

    protocol: Protocol
    family: Family
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: int
    uid: int
    inode: int

    @property
    def state_name(self) -> str:
        return TCP_STATES.get(self.state, f"unknown-{self.state:02x}")

    @property
    def listening(self) -> bool:
        """What ``ss -l`` lists: TCP in LISTEN, UDP unconnected (state 07) with a port."""
        if self.protocol is Protocol.TCP:
            return self.state == TCP_LISTEN
        return self.state == TCP_CLOSE and self.remote_port == 0 and self.local_port != 0

    def to_socket(self) -> ListeningSocket:
        return ListeningSocket.make(
            self.protocol, self.local_address, self.local_port,
            uid=self.uid, inode=self.inode or None,
            state="listen" if self.protocol is Protocol.TCP else "unconn")


@dataclass
class ProcTable:
    """Parsed entries and how many lines had to be skipped."""

    entries: list[ProcSocket] = field(default_factory=list)
    skipped: int = 0


def decode_address(text: str, byteorder: Byteorder = "little") -> str:
    """``0100007F`` -> ``127.0.0.1`` (little-endian host); 32 hex digits -> IPv6."""
    raw = bytes.fromhex(text)
    words = [raw[i:i + 4] for i in range(0, len(raw), 4)]
    if byteorder == "little":
        words = [w[::-1] for w in words]
    packed = b"".join(words)
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    ip6 = ipaddress.IPv6Address(packed)
    if ip6.ipv4_mapped is not None:
        return f"::ffff:{ip6.ipv4_mapped}"
    return str(ip6)


def parse_table(text: str, protocol: Protocol | str, family: Family | str,
                byteorder: Byteorder = "little") -> ProcTable:
    """Every socket line of one /proc/net file (header and junk lines skipped)."""
    proto, fam = Protocol(protocol), Family(family)
    want_len = 8 if fam is Family.IPV4 else 32
    table = ProcTable()
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        m = _ENTRY.match(line)
        if m is None:
            if n == 0 and "local_address" in line:
                continue  # the header
            table.skipped += 1
            continue
        if len(m["laddr"]) != want_len or len(m["raddr"]) != want_len:
            table.skipped += 1  # an IPv6 line in an IPv4 file: not trusted
            continue
        table.entries.append(ProcSocket(
            protocol=proto, family=fam,
            local_address=decode_address(m["laddr"], byteorder),
            local_port=int(m["lport"], 16),
            remote_address=decode_address(m["raddr"], byteorder),
            remote_port=int(m["rport"], 16),
            state=int(m["st"], 16),
            uid=int(m["uid"]),
            inode=int(m["inode"]),
        ))
    return table


def listening_sockets(tables: Iterable[ProcTable]) -> list[ListeningSocket]:
    """The listening/bound sockets of several parsed tables, one per kernel socket."""
    out: list[ListeningSocket] = []
    seen: set[tuple[str, int, int]] = set()
    for table in tables:
        for e in table.entries:
            if not e.listening:
                continue
            if e.inode:
                key = (e.protocol.value, e.family == Family.IPV6, e.inode)
                if key in seen:  # a line repeated by a racing read
                    continue
                seen.add(key)
            out.append(e.to_socket())
    return out


def parse_fd_link(target: str) -> int | None:
    """The inode of a ``/proc/<pid>/fd/<n>`` link target ``socket:[12345]``, else None."""
    if target.startswith("socket:[") and target.endswith("]"):
        digits = target[8:-1]
        if digits.isdigit():
            return int(digits)
    return None
