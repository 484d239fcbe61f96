"""Memcached text protocol (TCP and UDP frames): ``version`` and ``stats``."""

from __future__ import annotations

import re
import struct

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    clean,
    exchange,
    line_complete,
)

_VERSION = re.compile(rb"^VERSION (\S+)\r?\n")


def udp_frame(request_id: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", request_id & 0xFFFF, 0, 1, 0) + payload


def recognize(data: bytes) -> int:
    return 10 if _VERSION.match(data) else 0


def _record(facts: Facts, data: bytes) -> bool:
    m = _VERSION.match(data)
    if m is None:
        return False
    version = clean(m.group(1), 40)
    facts.identify("memcache", 10, "probe")
    facts.set_product("Memcached", version, cpe=[rules.cpe("a:memcached:memcached", version)])
    facts.extra["auth_required"] = False
    return True


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(b"version\r\n", line_complete, limit=1024)
    facts.saw(r.data)
    if not _record(facts, r.data):
        if r.data.startswith(b"CLIENT_ERROR unauthenticated"):
            facts.identify("memcache", 9, "probe")
            facts.set_product("Memcached")
            facts.extra["auth_required"] = True
        return
    if ctx.transport == "tcp":
        yield from exchange(b"quit\r\n", line_complete, limit=256, timeout=0.5)


def udp_dialog(ctx: Context, facts: Facts) -> Dialog:
    rid = ctx.nonce & 0xFFFF
    r = yield from exchange(udp_frame(rid, b"version\r\n"), limit=2048, retries=1)
    facts.saw(r.data)
    if len(r.data) > 8 and struct.unpack_from("!H", r.data)[0] == rid and \
            _record(facts, r.data[8:]):
        facts.extra["udp"] = True


PROTOCOL = ServiceProtocol(name="memcache", dialog=dialog, udp=udp_dialog,
                           recognize=recognize, rarity=3, udp_rarity=6,
                           hints=("memcache", "memcached"), udp_hints=("memcache",))
