"""RDP (MS-RDPBCGR 2.2.1.1/2.2.1.2): X.224 connection requests with RDP_NEG_REQ for
standard RDP security, TLS and CredSSP (NLA), and the certificate when TLS is chosen.

xrdp answers the negotiation like Windows (same X.224 references, flags 0x01), but a
malformed MCS Connect-Initial after it gets an MCS Disconnect-Provider-Ultimatum from xrdp
(its ``xrdp_mcs_disconnect``) where Windows just closes the connection: that is how xrdp is
told apart (nmap's xrdp signature is the same PDU)."""

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
# an X.224 Data TPDU whose MCS payload is one zero byte (no Connect-Initial)
BAD_MCS = b"\x03\x00\x00\x08\x02\xf0\x80\x00"
# TPKT + X.224 Data + MCS Disconnect-Provider-Ultimatum (reason rn-user-requested)
DISCONNECT_ULTIMATUM = b"\x03\x00\x00\x09\x02\xf0\x80\x21\x80"


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


def is_xrdp(data: bytes) -> bool:
    """The answer to :data:`BAD_MCS` is xrdp's Disconnect-Provider-Ultimatum."""
    return data.startswith(DISCONNECT_ULTIMATUM[:7]) and len(data) >= 9 and data[7] == 0x21


def dialog(ctx: Context, facts: Facts) -> Dialog:
    xrdp: bool | None = None
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
            tls = yield from starttls()
            if not tls.ok:
                continue
        elif selected != PROTOCOL_RDP:
            continue
        if xrdp is None and ctx.intensity >= 2:
            # standard RDP security, or inside the TLS just set up: the MCS layer
            r = yield from exchange(BAD_MCS, tpkt_complete, limit=64)
            xrdp = is_xrdp(r.data)
    if facts.name != "ms-wbt-server":
        return
    facts.extra["protocols"] = accepted
    if failures:
        facts.extra["failures"] = failures
    facts.extra["nla_required"] = "hybrid" in accepted and "rdp" not in accepted \
        and "ssl" not in accepted
    if xrdp:
        facts.set_product("xrdp", cpe=["cpe:2.3:a:neutrinolabs:xrdp:*:*:*:*:*:*:*:*"])
    elif flags:
        facts.set_product("Microsoft Terminal Services")
        facts.extra.setdefault("ostype", "Windows")


PROTOCOL = ServiceProtocol(name="ms-wbt-server", dialog=dialog, rarity=4,
                           hints=("ms-wbt-server", "rdp"))
