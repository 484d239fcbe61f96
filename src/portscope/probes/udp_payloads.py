"""UDP payloads that make real services answer (a UDP service ignores an empty datagram).

Every payload here is portscope's own, written from the protocol's specification (RFC or
vendor document named beside it). When nmap is installed, its ``nmap-payloads`` file is
read *at run time* for ports this table does not cover (it is never copied here); the
table wins where both have one. Pure: bytes in, bytes out; the file is read by
:func:`load_nmap_payloads` only when asked.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from pathlib import Path

NMAP_PAYLOAD_FILES = (
    Path("/usr/share/nmap/nmap-payloads"),
    Path("/usr/local/share/nmap/nmap-payloads"),
)


def _dns_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes((len(label),)) + label.encode("ascii")
    return out + b"\x00"


def dns_query(name: str, qtype: int, qclass: int = 1, *, ident: int = 0x5053,
              rd: bool = False) -> bytes:
    """RFC 1035 4.1: header (id, flags, 1 question) + question."""
    flags = 0x0100 if rd else 0
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + _dns_name(name) + \
        struct.pack("!HH", qtype, qclass)


def _ber(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes((n,))
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes((0x80 | len(raw),)) + raw
    return bytes((tag,)) + length + content


def _ber_int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _ber(0x02, raw)


def _ber_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    body = bytes((parts[0] * 40 + parts[1],))
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return _ber(0x06, body)


def snmp_get(community: str = "public", oid: str = "1.3.6.1.2.1.1.1.0", *,
             version: int = 1, request_id: int = 0x5053) -> bytes:
    """RFC 3416 GetRequest-PDU in an RFC 1901 (v2c, version=1) / RFC 1157 (v1, version=0)
    message: SEQUENCE { version, community, GetRequest { id, 0, 0, { { oid, NULL } } } }."""
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _ber(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(version) + _ber(0x04, community.encode()) + pdu)


def ntp_client(transmit: int = 0x5053_4F52_5453_4E50) -> bytes:
    """RFC 5905 7.3: LI=3 (unsynchronised), VN=4, mode 3 (client); 48 bytes; a non-zero
    transmit timestamp (servers echo it as the origin timestamp)."""
    return bytes((0xE3, 0, 6, 0xEC)) + b"\x00" * 36 + transmit.to_bytes(8, "big")


def netbios_nbstat() -> bytes:
    """RFC 1002 4.2.17: NODE STATUS REQUEST for the wildcard name '*' (first-level encoded:
    each half-byte + 'A')."""
    name = b"*" + b"\x00" * 15
    encoded = bytes(c for b in name for c in (0x41 + (b >> 4), 0x41 + (b & 0xF)))
    return struct.pack("!HHHHHH", 0x5053, 0, 1, 0, 0, 0) + bytes((32,)) + encoded + \
        b"\x00" + struct.pack("!HH", 0x21, 1)


def mdns_services() -> bytes:
    """RFC 6762/6763: a unicast-response (QU) PTR query for the service list."""
    return struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0) + \
        _dns_name("_services._dns-sd._udp.local") + struct.pack("!HH", 12, 0x8001)


def ssdp_msearch() -> bytes:
    """UPnP Device Architecture 2.0, 1.3.2: M-SEARCH (sent unicast, as a control point
    may)."""
    return (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
            b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n')


def ike_main_mode() -> bytes:
    """RFC 2408/2409: IKEv1 Main Mode first message: ISAKMP header + SA payload (DOI
    IPsec, SIT_IDENTITY_ONLY) with one proposal (PROTO_ISAKMP, KEY_IKE) and one transform
    (AES-128-CBC, SHA1, pre-shared key, MODP group 2, lifetime 28800 s)."""
    attrs = struct.pack("!HHHHHHHHHHHHHHL",
                        0x8001, 7,  # encryption: AES-CBC
                        0x800E, 128,  # key length 128
                        0x8002, 2,  # hash: SHA
                        0x8003, 1,  # auth: pre-shared key
                        0x8004, 2,  # group: MODP 1024
                        0x800B, 1,  # life type: seconds
                        0x000C, 4, 28800)  # life duration (variable length: 4 bytes)
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    sa = struct.pack("!BBHLL", 0, 0, 12 + len(proposal), 1, 1) + proposal
    header = b"PSCOOKIE" + b"\x00" * 8 + struct.pack("!BBBBLL", 1, 0x10, 2, 0, 0,
                                                       28 + len(sa))
    return header + sa


def rpc_null(program: int = 100000, version: int = 2) -> bytes:
    """RFC 5531: an ONC RPC CALL of procedure 0 (NULL) with AUTH_NONE."""
    return struct.pack("!LLLLLLLLLL", 0x50534E50, 0, 2, program, version, 0, 0, 0, 0, 0)


def tftp_rrq() -> bytes:
    """RFC 1350: read request (opcode 1) for a file that will not exist: an ERROR answers."""
    return b"\x00\x01portscope-probe\x00octet\x00"


def sip_options() -> bytes:
    """RFC 3261 11: an OPTIONS request with the mandatory headers."""
    return (b"OPTIONS sip:nm SIP/2.0\r\nVia: SIP/2.0/UDP nm;branch=z9hG4bKportscope\r\n"
            b"From: <sip:nm@nm>;tag=portscope\r\nTo: <sip:nm2@nm2>\r\n"
            b"Call-ID: portscope\r\nCSeq: 42 OPTIONS\r\nMax-Forwards: 70\r\n"
            b"Content-Length: 0\r\n\r\n")


def coap_core() -> bytes:
    """RFC 7252/6690: confirmable GET /.well-known/core."""
    return b"\x40\x01\x50\x53" + b"\xbb.well-known" + b"\x04core"


def quic_version_negotiation() -> bytes:
    """RFC 9000 6 / RFC 8999: a long-header packet with a reserved version
    (0x?a?a?a?a) makes a QUIC server send Version Negotiation; padded to 1200 bytes."""
    head = b"\xc0" + b"\x1a\x2a\x3a\x4a" + b"\x08PSQUICID" + b"\x00"
    return head + b"\x00" * (1200 - len(head))


def memcached_version() -> bytes:
    """memcached protocol.txt, UDP: 8-byte frame header (id, seq 0, 1 datagram) + text."""
    return b"\x50\x53\x00\x00\x00\x01\x00\x00version\r\n"


def openvpn_reset() -> bytes:
    """OpenVPN wire protocol: P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7, key id 0), session
    id, empty ack array, packet id 0."""
    return b"\x38" + b"PSOPENVP" + b"\x00" + b"\x00\x00\x00\x00"


def xdmcp_query() -> bytes:
    """X Display Manager Control Protocol 1.1: Query with no authentication names."""
    return b"\x00\x01\x00\x02\x00\x01\x00"


_CRLF = b"\r\n"

PAYLOADS: dict[int, bytes] = {
    7: _CRLF,  # echo (RFC 862)
    13: _CRLF,  # daytime (RFC 867)
    19: _CRLF,  # chargen (RFC 864)
    37: _CRLF,  # time (RFC 868)
    53: dns_query("version.bind", 16, 3),  # TXT CH (RFC 1035, BIND convention)
    69: tftp_rrq(),
    111: rpc_null(),
    123: ntp_client(),
    137: netbios_nbstat(),
    161: snmp_get(),
    177: xdmcp_query(),
    443: quic_version_negotiation(),
    500: ike_main_mode(),
    1194: openvpn_reset(),
    1434: b"\x02",  # MS SQL Server Resolution Protocol: CLNT_BCAST_EX
    1900: ssdp_msearch(),
    2049: rpc_null(100003, 3),  # NFSv3 NULL
    4500: ike_main_mode(),  # IKE over NAT-T port (no non-ESP marker needed for a probe)
    5060: sip_options(),
    5351: b"\x00\x00",  # NAT-PMP (RFC 6886): external address request
    5353: mdns_services(),
    5683: coap_core(),
    11211: memcached_version(),
}


_LINE = re.compile(r'^udp\s+(\S+)\s*(.*)$')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "x" and i + 3 < len(text) + 1:
                try:
                    out.append(int(text[i + 2:i + 4], 16))
                    i += 4
                    continue
                except ValueError:
                    pass
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00"}.get(n, n.encode())
            i += 2
            continue
        out += c.encode("latin-1", "replace")
        i += 1
    return bytes(out)


def _ports(spec: str) -> Iterable[int]:
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            yield from range(int(lo), int(hi or lo) + 1)


def parse_nmap_payloads(text: str) -> dict[int, bytes]:
    """Port -> first payload, from the text of nmap's ``nmap-payloads`` (``udp PORTS
    "string" "string" ... [source PORT]`` entries; later entries for a port are ignored).
    Malformed entries are skipped."""
    result: dict[int, bytes] = {}
    current: list[int] | None = None
    chunks: list[bytes] = []

    def flush() -> None:
        if current is not None and chunks:
            data = b"".join(chunks)
            for p in current:
                if 0 < p < 65536:
                    result.setdefault(p, data)

    for raw_line in text.splitlines():
        line = raw_line.split("#", 1)[0].strip() if not raw_line.lstrip().startswith('"') \
            else raw_line.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if m:
            flush()
            current = list(_ports(m.group(1)))
            chunks = []
            rest = m.group(2)
        else:
            rest = line
        if current is None:
            continue
        for s in _STRING.findall(rest):
            chunks.append(_unescape(s))
    flush()
    return result


def load_nmap_payloads() -> dict[int, bytes]:
    """nmap's payloads if nmap is installed (read at run time), else an empty table."""
    for path in NMAP_PAYLOAD_FILES:
        try:
            return parse_nmap_payloads(path.read_text(encoding="latin-1"))
        except OSError:
            continue
    return {}


class PayloadTable:
    """Port -> payload: ours first, then nmap's (if installed); else an empty datagram."""

    def __init__(self, extra: dict[int, bytes] | None = None) -> None:
        self._extra = extra or {}

    @classmethod
    def default(cls) -> PayloadTable:
        return cls(load_nmap_payloads())

    def __call__(self, port: int) -> bytes:
        data = PAYLOADS.get(port)
        if data is None:
            data = self._extra.get(port, b"")
        return data
