"""RDP (MS-RDPBCGR 2.2.1.1/2.2.1.2): X.224 connection requests with RDP_NEG_REQ for
standard RDP security, TLS and CredSSP (NLA), and the certificate when TLS is chosen."""

from __future__ import annotations

import struct

from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    exchange,
    reconnect,
    starttls,
)

PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX = 0, 1, 2, 8
FAILURES = {1: "SSL_REQUIRED_BY_SERVER", 2: "SSL_NOT_ALLOWED_BY_SERVER",
            3: "SSL_CERT_NOT_ON_SERVER", 4: "INCONSISTENT_FLAGS",
            5: "HYBRID_REQUIRED_BY_SERVER", 6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"}


def connection_request(protocols: int) -> bytes:
    neg = struct.pack("<BBHI", 1, 0, 8, protocols)
    x224 = bytes([6 + len(neg), 0xE0, 0, 0, 0, 0, 0]) + neg
    return struct.pack("!BBH", 3, 0, 4 + len(x224)) + x224


def tpkt_complete(data: bytes) -> bool:
    if len(data) < 4:
        return False
    if data[0] != 3:
        return True
    return len(data) >= int(struct.unpack_from("!H", data, 2)[0])


def parse_confirm(data: bytes) -> dict[str, int] | None:
    """``{"selected": p, "flags": f}`` or ``{"failure": code}`` or ``{}`` (no negotiation
    data: an old server speaking standard RDP), or None if not an X.224 confirm."""
    if len(data) < 11 or data[0] != 3 or data[1] != 0:
        return None
    length = struct.unpack_from("!H", data, 2)[0]
    if length < 11 or length > len(data) or data[5] & 0xF0 != 0xD0:
        return None
    if length >= 19:
        ntype, flags, nlen, value = struct.unpack_from("<BBHI", data, 11)
        if ntype == 2 and nlen == 8:
            return {"selected": value, "flags": flags}
        if ntype == 3 and nlen == 8:
            return {"failure": value}
    return {}


def dialog(ctx: Context, facts: Facts) -> Dialog:
    accepted: list[str] = []
    failures: dict[str, str] = {}
    flags = 0
    trials = ((PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX, None),
              (PROTOCOL_RDP, "rdp"), (PROTOCOL_SSL, "ssl"),
              (PROTOCOL_SSL | PROTOCOL_HYBRID, "hybrid"))
    first = True
    tls_done = False
    for requested, label in trials:
        if not first and not (yield from reconnect()):
            break
        first = False
        r = yield from exchange(connection_request(requested), tpkt_complete, limit=1024)
        facts.saw(r.data)
        confirm = parse_confirm(r.data)
        if confirm is None:
            if label is None:
                return
            continue
        facts.identify("ms-wbt-server", 10, "probe")
        if "failure" in confirm:
            if label:
                failures[label] = FAILURES.get(confirm["failure"], str(confirm["failure"]))
            continue
        selected = confirm.get("selected", PROTOCOL_RDP)
        flags |= confirm.get("flags", 0)
        if label is None:
            if ctx.intensity < 4:
                break
            continue
        name = {PROTOCOL_RDP: "rdp", PROTOCOL_SSL: "ssl", PROTOCOL_HYBRID: "hybrid",
                PROTOCOL_HYBRID_EX: "hybrid"}.get(selected)
        if name == label:
            accepted.append(label)
        if selected != PROTOCOL_RDP and not tls_done and not ctx.tls and ctx.intensity >= 2:
            tls_done = True
            yield from starttls()
    if facts.name != "ms-wbt-server":
        return
    facts.extra["protocols"] = accepted
    if failures:
        facts.extra["failures"] = failures
    facts.extra["nla_required"] = "hybrid" in accepted and "rdp" not in accepted \
        and "ssl" not in accepted
    if flags:
        facts.set_product("Microsoft Terminal Services")
        facts.extra.setdefault("ostype", "Windows")


PROTOCOL = ServiceProtocol(name="ms-wbt-server", dialog=dialog, rarity=4,
                           hints=("ms-wbt-server", "rdp"))
