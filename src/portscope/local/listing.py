"""Inventories from the text other tools print, for hosts that do not run portscope
(a Windows server, an appliance): ``netstat -an``/``-ano`` (Windows), ``netstat -tulnp``
(Linux net-tools), ``netstat -an`` (macOS/BSD: ``*.22``, ``tcp46``) and ``ss -ltnup``.
Pure: text in, :class:`~portscope.model.Inventory` out.

Only listening TCP sockets and unconnected UDP sockets are kept. The host's addresses
are not in such a listing; the specific (non-loopback) addresses sockets are bound to
are taken as the host's addresses, since a host can only bind its own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from portscope.errors import DataError
from portscope.model import (
    BindScope,
    Inventory,
    ListeningSocket,
    LocalAddress,
    Protocol,
    SocketProcess,
    utcnow,
)

_PROTO = re.compile(r"^(tcp|udp)(4|6|46)?$", re.IGNORECASE)
_SS_USER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+)(?:,fd=(\d+))?\)')
_NETSTAT_PROG = re.compile(r"^(\d+)/(.*)$")
_TCP_LISTEN = {"LISTEN", "LISTENING", "ABH\u00d6REN", "ESCUCHANDO", "\u5f85\u3061\u53d7\u3051"}
_UDP_BOUND = {"", "UNCONN", "CLOSE", "*:*"}


def _split_endpoint(text: str, bsd: bool) -> tuple[str, str, str | None] | None:
    """``[::1]:22`` / ``0.0.0.0:21`` / ``:::22`` / ``127.0.0.53%lo:53`` / ``*.22`` ->
    (address, port, interface)."""
    sep = "."
    if not bsd or text.startswith("["):
        sep = ":"
    host, s, port = text.rpartition(sep)
    if not s:
        return None
    iface = None
    if host.startswith("["):
        inner, _, rest = host[1:].partition("]")
        host = inner
        if rest.startswith("%"):
            iface = rest[1:]
    if "%" in host:
        host, _, iface = host.partition("%")
    return host, port, iface or None


def _is_bsd(local: str) -> bool:
    """BSD/macOS netstat writes ``127.0.0.1.631``, ``*.22``, ``fe80::1%lo0.123``."""
    return re.search(r":\d+$", local) is None and re.search(r"\.(\d+|\*)$", local) is not None


def _wildcard_peer(foreign: str, bsd: bool) -> bool:
    """``*:*``, ``0.0.0.0:*``, ``[::]:0``, ``*.*`` ...: an unconnected socket's peer."""
    if foreign in ("*", "*:*", "*.*"):
        return True
    parts = _split_endpoint(foreign, bsd)
    if parts is None:
        return False
    host, port, _ = parts
    if port not in ("*", "0"):
        return False
    if host in ("*", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _socket(proto_tok: str, local: str, bsd: bool) -> ListeningSocket | None:
    m = _PROTO.match(proto_tok)
    if m is None:
        return None
    proto = Protocol(m.group(1).lower())
    fam_digit = m.group(2) or ""
    parts = _split_endpoint(local, bsd)
    if parts is None:
        return None
    host, port_s, iface = parts
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        return None
    v6only: bool | None = None
    if host in ("*", ""):
        if fam_digit == "4":
            host = "0.0.0.0"
        else:  # ss "*" and BSD tcp46/tcp6 "*": the IPv6 wildcard
            host = "::"
            v6only = fam_digit == "6" if fam_digit else False
    elif host == "::" and fam_digit == "6" and not bsd:
        v6only = None  # Linux netstat "tcp6 :::22": cannot tell
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return ListeningSocket.make(proto, host, int(port_s), v6only=v6only, interface=iface)


def parse_listing(text: str, *, hostname: str = "", taken: datetime | None = None,
                  source: str = "listing") -> Inventory:
    """An inventory from netstat/ss text; :class:`DataError` if no line is recognised."""
    sockets: list[ListeningSocket] = []
    kind = ""
    for raw in text.splitlines():
        tokens = raw.split()
        if len(tokens) < 3 or not _PROTO.match(tokens[0]):
            continue
        proto_tok = tokens[0]
        state = ""
        rest = tokens[1:]
        if rest and not rest[0].isdigit() and rest[0].upper() in (
                "LISTEN", "UNCONN", "ESTAB", "TIME-WAIT", "CLOSE-WAIT", "SYN-SENT", "SYN-RECV",
                "FIN-WAIT-1", "FIN-WAIT-2", "LAST-ACK", "CLOSING"):
            kind = kind or "ss"
            state = rest[0].upper()
            rest = rest[1:]
        while rest and rest[0].isdigit():  # Recv-Q Send-Q
            rest = rest[1:]
        if len(rest) < 2:
            continue
        local, foreign, tail = rest[0], rest[1], rest[2:]
        bsd = _is_bsd(local)
        if not state and tail and not tail[0][0].isdigit() and "/" not in tail[0] \
                and tail[0] != "-":
            state = tail[0].upper()
            tail = tail[1:]
        sock = _socket(proto_tok, local, bsd)
        if sock is None:
            continue
        if sock.protocol is Protocol.TCP and state not in _TCP_LISTEN:
            continue
        if sock.protocol is Protocol.UDP and (state not in _UDP_BOUND
                                              or not _wildcard_peer(foreign, bsd)):
            continue
        sockets.append(replace(sock, processes=_processes(tail)))
    if not sockets:
        raise DataError("no listening sockets recognised: expected the JSON of 'portscope "
                        "local --json', or the output of 'netstat -an' or 'ss -ltnup'")
    addresses: list[LocalAddress] = []
    for s in sockets:
        if s.scope is BindScope.SPECIFIC and s.address not in {a.address for a in addresses}:
            addresses.append(LocalAddress(address=s.address))
    inv = Inventory(hostname=hostname, taken=taken or utcnow(), addresses=tuple(addresses),
                    collector=f"{kind or 'netstat'} text ({source})", process_detail="partial",
                    notes=("read from a listing: the host's addresses are the ones sockets "
                           "are bound to",))
    return inv.with_sockets(_dedupe(sockets))


def _processes(tail: list[str]) -> tuple[SocketProcess, ...]:
    text = " ".join(tail)
    found = [SocketProcess(pid=int(pid), name=name, fd=int(fd) if fd else None)
             for name, pid, fd in _SS_USER.findall(text)]
    if found:
        return tuple(found)
    for tok in tail:
        m = _NETSTAT_PROG.match(tok)
        if m:
            return (SocketProcess(pid=int(m.group(1)), name=m.group(2) or None),)
        if tok.isdigit():  # Windows netstat -ano: the PID column
            return (SocketProcess(pid=int(tok)),)
    return ()


def _dedupe(sockets: list[ListeningSocket]) -> list[ListeningSocket]:
    seen: set[tuple[str, str, int, str | None]] = set()
    out = []
    for s in sockets:
        key = (s.protocol.value, s.address, s.port, s.interface)
        if key in seen:
            continue
        seen.add(key)
        out.append(s)
    return out


def with_services(inv: Inventory, lookup: Callable[[int, str], str | None]) -> Inventory:
    """*inv* with the service name of every socket that has none (``lookup(port, proto)``,
    e.g. ``service_db().name``)."""
    return replace(inv, sockets=tuple(
        s if s.service else replace(s, service=lookup(s.port, s.protocol.value))
        for s in inv.sockets))
