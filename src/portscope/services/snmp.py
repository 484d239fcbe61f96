"""SNMP (RFC 1157 v1, RFC 3416 v2c, RFC 3414 v3 discovery) over UDP.

One round: a v2c GET of sysDescr/sysObjectID/sysName/UCD versionTag and a v1 GET of
sysDescr with the community we were given, and a v3 engine discovery (no credentials:
every v3 agent answers it with its engine ID, boots and uptime). All three go at once;
unanswered ones are resent once.
"""

from __future__ import annotations

from typing import Any

from portscope.services import ber, rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    Reply,
    ServiceProtocol,
    clean,
    recv,
    send,
)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
UCD_VERSION_TAG = "1.3.6.1.4.1.2021.100.2.0"  # net-snmp's own version

GET = 0xA0
RESPONSE = 0xA2
REPORT = 0xA8

ENTERPRISES = {
    8072: "net-snmp", 2021: "ucd-snmp", 311: "Microsoft", 9: "Cisco", 2636: "Juniper",
    14988: "MikroTik", 4526: "Netgear", 11: "HP", 2011: "Huawei", 6876: "VMware",
    674: "Dell", 1991: "Brocade", 12356: "Fortinet", 25461: "Palo Alto Networks",
    30065: "Arista", 41112: "Ubiquiti", 3375: "F5", 8741: "SonicWall", 2620: "Check Point",
}

AGENTS = {  # enterprise -> (product, cpe)
    8072: ("net-snmp", "a:net-snmp:net-snmp"),
    2021: ("ucd-snmp", "a:net-snmp:net-snmp"),
    311: ("Microsoft Windows SNMP service", None),
    9: ("Cisco SNMP service", None),
    2636: ("Juniper SNMP agent", None),
    14988: ("MikroTik RouterOS SNMP agent", None),
}


def get_request(version: int, community: str, request_id: int, oids: list[str]) -> bytes:
    varbinds = ber.sequence(*(ber.sequence(ber.oid(o), ber.null()) for o in oids))
    pdu = ber.sequence(ber.integer(request_id), ber.integer(0), ber.integer(0), varbinds,
                       tag=GET)
    return ber.sequence(ber.integer(version), ber.octets(community), pdu)


def v3_discovery(msg_id: int, request_id: int) -> bytes:
    usm = ber.sequence(ber.octets(b""), ber.integer(0), ber.integer(0), ber.octets(b""),
                       ber.octets(b""), ber.octets(b""))
    header = ber.sequence(ber.integer(msg_id), ber.integer(65507), ber.octets(b"\x04"),
                          ber.integer(3))
    pdu = ber.sequence(ber.integer(request_id), ber.integer(0), ber.integer(0),
                       ber.sequence(), tag=GET)
    scoped = ber.sequence(ber.octets(b""), ber.octets(b""), pdu)
    return ber.sequence(ber.integer(3), header, ber.octets(usm), scoped)


def _value(tag: int, content: bytes) -> Any:
    if tag == ber.OCTET_STRING:
        return content
    if tag in (ber.INTEGER, 0x41, 0x42, 0x43, 0x46):  # Integer, Counter, Gauge, TimeTicks
        return ber.to_int(content) if content else 0
    if tag == ber.OID:
        return ber.to_oid(content)
    if tag == 0x40 and len(content) == 4:
        return ".".join(str(b) for b in content)
    return None  # NULL, noSuchObject (0x80), noSuchInstance (0x81), endOfMibView (0x82)


def parse_response(data: bytes) -> dict[str, Any] | None:
    """``{"version", "community", "request_id", "error", "values": {oid: value}}`` of a
    v1/v2c Response PDU, or None."""
    try:
        tag, msg, _ = ber.read(data)
        if tag != ber.SEQUENCE:
            return None
        parts = ber.children(msg)
        if len(parts) != 3 or parts[0][0] != ber.INTEGER:
            return None
        version = ber.to_int(parts[0][1])
        if version not in (0, 1) or parts[2][0] != RESPONSE:
            return None
        fields = ber.children(parts[2][1])
        if len(fields) != 4:
            return None
        values: dict[str, Any] = {}
        for vtag, vb in ber.items(fields[3][1]):
            if vtag != ber.SEQUENCE:
                continue
            pair = ber.children(vb)
            if len(pair) == 2 and pair[0][0] == ber.OID:
                values[ber.to_oid(pair[0][1])] = _value(*pair[1])
        return {"version": version, "community": parts[1][1],
                "request_id": ber.to_int(fields[0][1]), "error": ber.to_int(fields[1][1]),
                "values": values}
    except ber.BERError:
        return None


def parse_v3_report(data: bytes) -> dict[str, Any] | None:
    """Engine ID, boots and time of an SNMPv3 Report (answer to discovery), or None."""
    try:
        tag, msg, _ = ber.read(data)
        if tag != ber.SEQUENCE:
            return None
        parts = ber.children(msg)
        if len(parts) < 4 or parts[0][0] != ber.INTEGER or ber.to_int(parts[0][1]) != 3:
            return None
        header = ber.children(parts[1][1])
        msg_id = ber.to_int(header[0][1]) if header else None
        _tag, usm, _ = ber.read(parts[2][1])
        fields = ber.children(usm)
        if len(fields) < 3:
            return None
        return {"msg_id": msg_id, "engine_id": fields[0][1],
                "engine_boots": ber.to_int(fields[1][1]) if fields[1][1] else 0,
                "engine_time": ber.to_int(fields[2][1]) if fields[2][1] else 0}
    except (ber.BERError, IndexError):
        return None


def engine_enterprise(engine_id: bytes) -> int | None:
    if len(engine_id) < 5 or not engine_id[0] & 0x80:
        return None
    return int.from_bytes(engine_id[:4], "big") & 0x7FFFFFFF


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return clean(value, 1024)
    if isinstance(value, str):
        return clean(value, 1024)
    return None


def dialog(ctx: Context, facts: Facts) -> Dialog:
    base = ctx.nonce & 0x3FFFFFFF
    community = ctx.snmp_community
    probes: dict[str, tuple[int, bytes]] = {
        "v2c": (base + 1, get_request(1, community, base + 1,
                                      [SYS_DESCR, SYS_OBJECT_ID, SYS_NAME, UCD_VERSION_TAG])),
        "v1": (base + 2, get_request(0, community, base + 2, [SYS_DESCR])),
    }
    if ctx.intensity >= 2:
        probes["v3"] = (base + 3, v3_discovery(base + 3, base + 4))
    answered: dict[str, Any] = {}
    for _round in range(2):
        for key, (_rid, payload) in probes.items():
            if key not in answered:
                yield from send(payload)
        while len(answered) < len(probes):
            r: Reply = yield from recv(limit=65535)
            if not r.data:
                break
            facts.saw(r.data)
            resp = parse_response(r.data)
            if resp is not None:
                for key in ("v2c", "v1"):
                    if resp["request_id"] == probes[key][0]:
                        answered[key] = resp
                continue
            rep = parse_v3_report(r.data)
            if rep is not None and "v3" in probes:
                answered["v3"] = rep
        if len(answered) == len(probes):
            break
    if not answered:
        return
    facts.identify("snmp", 10, "probe")
    facts.extra["versions"] = [k for k in ("v1", "v2c", "v3") if k in answered]
    values: dict[str, Any] = {}
    for key in ("v1", "v2c"):
        if key in answered:
            facts.extra["community"] = community
            values.update({k: v for k, v in answered[key]["values"].items() if v is not None})
    descr = _text(values.get(SYS_DESCR))
    if descr:
        facts.extra["sys_descr"] = descr
    name = _text(values.get(SYS_NAME))
    if name:
        facts.extra["sys_name"] = name
    object_id = values.get(SYS_OBJECT_ID)
    enterprise: int | None = None
    if isinstance(object_id, str):
        facts.extra["sys_object_id"] = object_id
        if object_id.startswith("1.3.6.1.4.1."):
            try:
                enterprise = int(object_id.split(".")[6])
            except (IndexError, ValueError):
                enterprise = None
    if "v3" in answered:
        rep = answered["v3"]
        engine_id: bytes = rep["engine_id"]
        facts.extra["engine_id"] = engine_id.hex()
        facts.extra["engine_boots"] = rep["engine_boots"]
        facts.extra["engine_time"] = rep["engine_time"]
        ent = engine_enterprise(engine_id)
        if ent is not None:
            facts.extra["engine_vendor"] = ENTERPRISES.get(ent, f"enterprise {ent}")
            if enterprise is None:
                enterprise = ent
    if enterprise in AGENTS:
        product, cpe_base = AGENTS[enterprise]
        version = _text(values.get(UCD_VERSION_TAG)) if enterprise in (8072, 2021) else None
        facts.set_product(product, version,
                          cpe=[rules.cpe(cpe_base, version)] if cpe_base else ())
    if descr:
        rules.match("snmp-sysdescr", descr, facts, service="snmp")
    notes = []
    if "v3" in answered and not any(k in answered for k in ("v1", "v2c")):
        notes.append("SNMPv3 only answered")
    if notes:
        facts.extrainfo = "; ".join(notes)


PROTOCOL = ServiceProtocol(name="snmp", udp=dialog, udp_rarity=2, udp_hints=("snmp",
                                                                              "snmptrap"))
