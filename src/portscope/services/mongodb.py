"""MongoDB wire protocol: ``isMaster`` (OP_QUERY, understood by every version), then
``buildInfo`` and ``listDatabases`` (OP_MSG from wire version 6, else OP_QUERY)."""

from __future__ import annotations

import struct
from typing import Any

from portscope.services import bson, rules
from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, exchange

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013


def op_query(request_id: int, command: dict[str, Any], collection: str = "admin.$cmd") -> bytes:
    body = struct.pack("<i", 0) + collection.encode() + b"\0" + struct.pack("<ii", 0, -1) + \
        bson.encode(command)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_QUERY) + body


def op_msg(request_id: int, command: dict[str, Any]) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson.encode({**command, "$db": "admin"})
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body


def message_complete(data: bytes) -> bool:
    if len(data) < 4:
        return False
    n = int(struct.unpack_from("<i", data)[0])
    return n < 16 or n > 16 * 1024 * 1024 or len(data) >= n


def parse_reply(data: bytes, request_id: int) -> dict[str, Any] | None:
    """The first document of an OP_REPLY / OP_MSG answering *request_id*, or None."""
    if len(data) < 16:
        return None
    length, _rid, response_to, opcode = struct.unpack_from("<iiii", data)
    if length > len(data) or length < 16 or response_to != request_id:
        return None
    try:
        if opcode == OP_REPLY and length >= 36:
            return bson.loads(data[36:length])
        if opcode == OP_MSG and length >= 21 and data[20] == 0:
            return bson.loads(data[21:length])
    except bson.BSONError:
        return None
    return None


def dialog(ctx: Context, facts: Facts) -> Dialog:
    rid = (ctx.nonce & 0x3FFFFFFF) + 1
    r = yield from exchange(op_query(rid, {"isMaster": 1}), message_complete, limit=65536)
    facts.saw(r.data)
    hello = parse_reply(r.data, rid)
    if hello is None:
        return
    facts.identify("mongodb", 10, "probe")
    facts.set_product("MongoDB")
    wire = hello.get("maxWireVersion")
    if isinstance(wire, int):
        facts.extra["max_wire_version"] = wire
    use_msg = isinstance(wire, int) and wire >= 6

    def command(req_id: int, doc: dict[str, Any]) -> bytes:
        return op_msg(req_id, doc) if use_msg else op_query(req_id, doc)

    r = yield from exchange(command(rid + 1, {"buildInfo": 1}), message_complete, limit=65536)
    info = parse_reply(r.data, rid + 1)
    if info is not None and isinstance(info.get("version"), str):
        version = clean(info["version"], 40)
        facts.set_product("MongoDB", version, cpe=[rules.cpe("a:mongodb:mongodb", version)])
    else:
        facts.cpe = [rules.cpe("a:mongodb:mongodb")]
    if ctx.auth_checks:
        r = yield from exchange(command(rid + 2, {"listDatabases": 1}), message_complete,
                                limit=262144)
        dbs = parse_reply(r.data, rid + 2)
        if dbs is not None:
            ok = dbs.get("ok")
            facts.extra["auth_required"] = not (ok == 1 or ok == 1.0 or ok is True)
            if not facts.extra["auth_required"] and isinstance(dbs.get("databases"), list):
                facts.extra["databases"] = [clean(str(d.get("name")), 64)
                                            for d in dbs["databases"][:50]
                                            if isinstance(d, dict)]


PROTOCOL = ServiceProtocol(name="mongodb", dialog=dialog, rarity=5, hints=("mongodb", "mongod"))
