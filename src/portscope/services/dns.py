"""DNS (RFC 1035) over UDP and TCP: ``version.bind CH TXT`` and whether the server
recurses for names it is not authoritative for. Messages are built and parsed with
dnspython; a malformed answer is data, never an exception."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    Step,
    clean,
    exchange,
)

RECURSION_TEST_NAME = "example.com"  # IANA-reserved, always resolvable on the Internet


def query(name: str, rdtype: str, rdclass: str, qid: int, *, rd: bool) -> bytes:
    q = dns.message.make_query(name, rdtype, rdclass)
    q.id = qid & 0xFFFF
    q.flags = dns.flags.RD if rd else 0
    return q.to_wire()


def parse(data: bytes, qid: int) -> dns.message.Message | None:
    try:
        msg = dns.message.from_wire(data, ignore_trailing=True)
    except Exception:
        return None
    if msg.id != qid & 0xFFFF or not msg.flags & dns.flags.QR:
        return None
    return msg


def txt_answer(msg: dns.message.Message) -> str | None:
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rd in rrset:
                strings = getattr(rd, "strings", ())
                return clean(b"".join(strings), 255)
    return None


def recursion(msg: dns.message.Message) -> bool:
    """RA set and a real answer, or a referral-free NOERROR/NXDOMAIN that is not
    authoritative (the server looked the name up for us)."""
    if not msg.flags & dns.flags.RA:
        return False
    rcode = msg.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return False
    if msg.flags & dns.flags.AA:
        return False
    if msg.answer:
        return True
    referral = any(rr.rdtype == dns.rdatatype.NS for rr in msg.authority)
    return not referral


def tcp_complete(data: bytes) -> bool:
    return len(data) >= 2 and len(data) >= 2 + struct.unpack_from("!H", data)[0]


def _ask(ctx: Context, payload: bytes) -> Step:
    """One query/answer; returns the raw answer (TCP framing removed)."""
    if ctx.transport == "udp":
        r = yield from exchange(payload, limit=4096, retries=1)
        return r.data
    r = yield from exchange(struct.pack("!H", len(payload)) + payload, tcp_complete,
                            limit=65537)
    return r.data[2:]


def dialog(ctx: Context, facts: Facts) -> Dialog:
    qid = ctx.nonce & 0xFFFF
    data = yield from _ask(ctx, query("version.bind", "TXT", "CH", qid, rd=False))
    facts.saw(data)
    msg = parse(data, qid)
    if msg is None:
        return
    facts.identify("domain", 10, "probe")
    facts.extra["rcode"] = dns.rcode.to_text(msg.rcode())
    version = txt_answer(msg)
    if version is not None:
        facts.extra["version_bind"] = version
        rules.match("dns", version, facts, service="domain")
    if ctx.intensity < 2:
        return
    qid2 = (qid + 1) & 0xFFFF
    data = yield from _ask(ctx, query(RECURSION_TEST_NAME, "A", "IN", qid2, rd=True))
    msg = parse(data, qid2)
    if msg is not None:
        facts.extra["recursion"] = recursion(msg)


PROTOCOL = ServiceProtocol(
    name="domain", dialog=dialog, udp=dialog, rarity=4, udp_rarity=1,
    hints=("domain",), udp_hints=("domain", "mdns"),
)
