"""SSH (RFC 4253): the identification string, then the server's KEXINIT algorithm lists.

The server sends ``SSH-protoversion-softwareversion [comments]`` (maybe after other
lines); we answer with our own identification, which makes the server send its
KEXINIT in the clear: key exchange, host key, cipher and MAC algorithms.
"""

from __future__ import annotations

import struct

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    bounded_list,
    clean,
    exchange,
    recv,
)

CLIENT_ID = b"SSH-2.0-portscope\r\n"
MAX_PACKET = 35000  # RFC 4253 6.1: implementations must handle 35000-byte packets


def recognize(data: bytes) -> int:
    if data.startswith(b"SSH-"):
        return 10
    return 8 if b"\nSSH-" in data[:2048] else 0


def ident_complete(data: bytes) -> bool:
    for line in data.split(b"\n")[:-1]:
        if line.startswith(b"SSH-"):
            return True
    return len(data) >= 8192


def find_ident(data: bytes) -> tuple[str, bytes] | None:
    """The identification line (``SSH-2.0-...``, without CR LF) and the bytes after it."""
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        line = data[pos:] if nl < 0 else data[pos:nl]
        if line.startswith(b"SSH-"):
            rest = b"" if nl < 0 else data[nl + 1:]
            return clean(line.rstrip(b"\r"), 255), rest
        if nl < 0:
            break
        pos = nl + 1
    return None


def parse_ident(ident: str, facts: Facts) -> None:
    """``SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`` -> facts."""
    rest = ident[4:]
    proto, _, software = rest.partition("-")
    facts.identify("ssh", 10, "banner")
    facts.extra["protocol_version"] = proto
    if software:
        facts.extra["software"] = software[:255]
        rules.match("ssh", software, facts, service="ssh")
    note = f"protocol {proto}"
    facts.extrainfo = f"{facts.extrainfo}; {note}" if facts.extrainfo else note


def packet_complete(data: bytes) -> bool:
    if len(data) < 4:
        return False
    length = int(struct.unpack_from("!I", data)[0])
    return length > MAX_PACKET or len(data) >= 4 + length


def parse_kexinit(data: bytes, facts: Facts) -> bool:
    """Parse one binary packet holding SSH_MSG_KEXINIT; True if it was one."""
    if len(data) < 6:
        return False
    length, padding = struct.unpack_from("!IB", data)
    if length > MAX_PACKET or len(data) < 4 + length or length < padding + 1 + 17:
        return False
    payload = data[5: 4 + length - padding]
    if not payload or payload[0] != 20:
        return False
    pos = 17  # msg code + 16-byte cookie
    lists: list[list[str]] = []
    for _ in range(10):
        if pos + 4 > len(payload):
            return False
        n = struct.unpack_from("!I", payload, pos)[0]
        pos += 4
        if pos + n > len(payload):
            return False
        text = payload[pos: pos + n].decode("ascii", "replace")
        pos += n
        lists.append(bounded_list(clean(x, 100) for x in text.split(",")))
    facts.extra["kex"] = lists[0]
    facts.extra["host_key_algorithms"] = lists[1]
    facts.extra["ciphers"] = lists[2]
    facts.extra["macs"] = lists[4]
    facts.extra["compression"] = lists[6]
    return True


def dialog(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    if not ident_complete(data):
        r = yield from recv(ident_complete, limit=8192)
        data = data + r.data
    facts.saw(data)
    found = find_ident(data)
    if found is None:
        return
    ident, rest = found  # whatever followed the line starts the binary protocol
    parse_ident(ident, facts)
    if ctx.intensity < 1:
        return
    if not packet_complete(rest):
        r = yield from exchange(CLIENT_ID, lambda b: packet_complete(rest + b),
                                limit=MAX_PACKET + 8)
        rest += r.data
    parse_kexinit(rest, facts)


PROTOCOL = ServiceProtocol(
    name="ssh", dialog=dialog, server_first=True, recognize=recognize, hints=("ssh",),
)
