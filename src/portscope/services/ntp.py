"""NTP (RFC 5905 mode 3/4, RFC 1305 mode 6 control, ntpd's mode 7 MON_GETLIST)."""

from __future__ import annotations

import re
import struct

from portscope.services import rules
from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, exchange


def client_request(nonce: int) -> bytes:
    """Mode 3 (client), version 4, with a transmit timestamp the answer must echo."""
    return bytes([0x23]) + bytes(39) + struct.pack("!Q", nonce & 0xFFFFFFFFFFFFFFFF)


def readvar_request(sequence: int) -> bytes:
    """Mode 6 READVAR of the system variables (version=, system= ...)."""
    return struct.pack("!BBHHHHH", 0x16, 2, sequence & 0xFFFF, 0, 0, 0, 0)


MONLIST_REQUEST = b"\x17\x00\x03\x2a" + bytes(4)


def parse_server(data: bytes, nonce: int) -> dict[str, object] | None:
    if len(data) < 48:
        return None
    first, stratum = data[0], data[1]
    mode, version = first & 7, (first >> 3) & 7
    if mode not in (4, 5) or version not in (1, 2, 3, 4):
        return None
    origin = struct.unpack_from("!Q", data, 24)[0]
    if origin != nonce & 0xFFFFFFFFFFFFFFFF and origin != 0:
        return None
    refid = data[12:16]
    out: dict[str, object] = {"version": version, "stratum": stratum,
                              "leap": first >> 6}
    if stratum == 1:
        out["refid"] = clean(refid.rstrip(b"\0"), 8)
    elif stratum > 1:
        out["refid"] = ".".join(str(b) for b in refid)
    return out


def parse_readvar(data: bytes, sequence: int) -> str | None:
    if len(data) < 12 or data[0] & 7 != 6 or not data[1] & 0x80 or data[1] & 0x1F != 2:
        return None
    if struct.unpack_from("!H", data, 2)[0] != sequence & 0xFFFF or data[1] & 0x40:
        return None
    count = struct.unpack_from("!H", data, 10)[0]
    return data[12: 12 + count].decode("latin-1")


_VAR = re.compile(r'(\w+)=("([^"]*)"|[^,]*)')


def variables(text: str) -> dict[str, str]:
    return {m.group(1): clean(m.group(3) if m.group(3) is not None else m.group(2), 200)
            for m in _VAR.finditer(text)}


def monlist_answered(data: bytes) -> bool | None:
    if len(data) < 8 or data[0] & 7 != 7:
        return None
    if not data[0] & 0x80:
        return None
    err = data[4] >> 4
    return err == 0 and data[3] == 42


def dialog(ctx: Context, facts: Facts) -> Dialog:
    nonce = (ctx.nonce << 20) | 0x5053
    r = yield from exchange(client_request(nonce), limit=2048, retries=1)
    facts.saw(r.data)
    info = parse_server(r.data, nonce)
    if info is None:
        return
    facts.identify("ntp", 10, "probe")
    facts.extra["version"] = info["version"]
    facts.extra["stratum"] = info["stratum"]
    if "refid" in info:
        facts.extra["refid"] = info["refid"]
    facts.extrainfo = f"NTP v{info['version']}" + (
        ", unsynchronized" if info["leap"] == 3 or info["stratum"] in (0, 16) else "")
    if ctx.intensity >= 3:
        seq = ctx.nonce & 0xFFFF
        r = yield from exchange(readvar_request(seq), limit=4096)
        text = parse_readvar(r.data, seq)
        if text:
            var = variables(text)
            facts.extra["control"] = True  # mode 6 answered
            if "version" in var:
                facts.extra["daemon_version"] = var["version"]
                rules.match("ntp", var["version"], facts, service="ntp")
            if "system" in var:
                facts.extra["system"] = var["system"]
    if ctx.intensity >= 5:
        r = yield from exchange(MONLIST_REQUEST, limit=65535)
        answered = monlist_answered(r.data)
        facts.extra["monlist"] = bool(answered)


PROTOCOL = ServiceProtocol(name="ntp", udp=dialog, udp_rarity=2, udp_hints=("ntp",))
