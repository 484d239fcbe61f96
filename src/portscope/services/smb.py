"""SMB (MS-SMB2 2.2.3/2.2.4 NEGOTIATE, MS-SMB 2.2.4.52 SMB1 NEGOTIATE, MS-NLMP CHALLENGE).

What an administrator needs: which dialects the server speaks (SMBv1 is the dangerous
one), whether signing is required, and what the NTLM challenge tells anyone who asks
(computer and domain names, OS build). No credentials are sent: the session setup
carries an NTLM NEGOTIATE and stops at the server's CHALLENGE.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from portscope.services import ber
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    Step,
    clean,
    exchange,
    reconnect,
)

DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}
SMB1_DIALECT = "NT LM 0.12"

STATUS_SUCCESS = 0
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016

NTLMSSP_NEGOTIATE_FLAGS = 0xE2888207
SPNEGO_OID = "1.3.6.1.5.5.2"
NTLMSSP_OID = "1.3.6.1.4.1.311.2.2.10"
SAMBA_HINT = b"not_defined_in_RFC4178@please_ignore"


def netbios(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(3, "big") + payload


def session_request(called: bytes = b"*SMBSERVER", calling: bytes = b"PORTSCOPE") -> bytes:
    """NetBIOS session request (port 139), names with suffix 0x20."""
    def name(n: bytes) -> bytes:
        raw = n.ljust(15, b" ")[:15] + b"\x20"
        out = bytearray([32])
        for b in raw:
            out += bytes([0x41 + (b >> 4), 0x41 + (b & 0xF)])
        return bytes(out) + b"\0"
    body = name(called) + name(calling)
    return b"\x81\x00" + struct.pack("!H", len(body)) + body


def smb2_header(command: int, message_id: int, credits: int = 31) -> bytes:
    return (b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, command, credits, 0, 0,
                                      message_id, 0xFEFF, 0, 0) + bytes(16))


def negotiate_request(dialects: list[int], client_guid: bytes, salt: bytes) -> bytes:
    """SMB2 NEGOTIATE offering *dialects* (with the 3.1.1 negotiate contexts if needed)."""
    count = len(dialects)
    body_len = 36 + 2 * count
    contexts = b""
    if 0x0311 in dialects:
        pad = (8 - (64 + body_len) % 8) % 8
        offset = 64 + body_len + pad
        preauth = struct.pack("<HHH", 1, 32, 0x0001) + salt[:32].ljust(32, b"\0")
        ctx1 = struct.pack("<HHI", 1, len(preauth), 0) + preauth
        ctx1 += bytes((8 - len(ctx1) % 8) % 8)
        enc = struct.pack("<HHH", 2, 0x0002, 0x0001)
        ctx2 = struct.pack("<HHI", 2, len(enc), 0) + enc
        contexts = bytes(pad) + ctx1 + ctx2
        tail = struct.pack("<IHH", offset, 2, 0)
    else:
        tail = bytes(8)
    body = struct.pack("<HHHHI", 36, count, 0x0001, 0, 0x7F) + client_guid[:16].ljust(16, b"\0") \
        + tail + b"".join(struct.pack("<H", d) for d in dialects)
    return netbios(smb2_header(0, 0) + body + contexts)


def smb1_negotiate(dialects: list[str]) -> bytes:
    header = b"\xffSMB" + struct.pack("<BIBH", 0x72, 0, 0x18, 0xC801) + bytes(12) + \
        struct.pack("<HHHH", 0, 0xFEFF, 0, 0)
    names = b"".join(b"\x02" + d.encode() + b"\0" for d in dialects)
    return netbios(header + b"\x00" + struct.pack("<H", len(names)) + names)


def ntlm_negotiate() -> bytes:
    return b"NTLMSSP\x00" + struct.pack("<II", 1, NTLMSSP_NEGOTIATE_FLAGS) + bytes(16) + \
        struct.pack("<BBHBBBB", 6, 1, 7601, 0, 0, 0, 15)


def spnego_init(token: bytes) -> bytes:
    mech_types = ber.tlv(0xA0, ber.sequence(ber.oid(NTLMSSP_OID)))
    mech_token = ber.tlv(0xA2, ber.octets(token))
    init = ber.tlv(0xA0, ber.sequence(mech_types, mech_token))
    return ber.tlv(0x60, ber.oid(SPNEGO_OID) + init)


def session_setup_request(message_id: int, token: bytes) -> bytes:
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(token), 0) + token
    return netbios(smb2_header(1, message_id) + body)


def smb1_session_setup(token: bytes) -> bytes:
    """SMB1 SESSION_SETUP_ANDX with extended security (MS-SMB 2.2.4.53.1) carrying *token*
    (an SPNEGO NTLM NEGOTIATE): the answer names the server's OS and LAN manager."""
    header = b"\xffSMB" + struct.pack("<BIBH", 0x73, 0, 0x18, 0xC801) + bytes(12) + \
        struct.pack("<HHHH", 0, 0xFEFF, 0, 1)
    words = struct.pack("<BBHHHHIHII", 0xFF, 0, 0, 0xFFFF, 2, 0, 0, len(token), 0,
                        0x800000D4)  # extended security, NT status, unicode, NT SMBs
    pad = b"\0" if (32 + 1 + len(words) + 2 + len(token)) % 2 else b""
    data = token + pad + "Unix\0portscope\0".encode("utf-16-le")
    return netbios(header + bytes([len(words) // 2]) + words + struct.pack("<H", len(data))
                   + data)


def parse_smb1_session_setup(data: bytes) -> dict[str, Any] | None:
    """NativeOS, NativeLanMan and PrimaryDomain of a SESSION_SETUP_ANDX answer (success
    or STATUS_MORE_PROCESSING_REQUIRED), and its security blob."""
    msg = data[4:]
    if len(msg) < 35 or msg[:4] != b"\xffSMB" or msg[4] != 0x73:
        return None
    status = struct.unpack_from("<I", msg, 5)[0]
    flags2 = struct.unpack_from("<H", msg, 10)[0]
    out: dict[str, Any] = {"status": status}
    wc = msg[32]
    if status not in (STATUS_SUCCESS, STATUS_MORE_PROCESSING_REQUIRED) or wc not in (3, 4):
        return out
    pos = 33 + 2 * wc
    if pos + 2 > len(msg):
        return out
    count = struct.unpack_from("<H", msg, pos)[0]
    pos += 2
    end = min(len(msg), pos + count)
    blob_len = struct.unpack_from("<H", msg, 33 + 6)[0] if wc == 4 else 0
    out["security_blob"] = msg[pos: pos + blob_len]
    pos += blob_len
    if flags2 & 0x8000:
        pos += pos % 2
        strings = msg[pos:end].decode("utf-16-le", "replace").split("\0")
    else:
        strings = msg[pos:end].decode("latin-1").split("\0")
    for key, value in zip(("native_os", "native_lanman", "primary_domain"), strings,
                          strict=False):
        if value:
            out[key] = clean(value, 100)
    return out


SAMBA_LANMAN = re.compile(r"^Samba (\d+\.\d+(?:\.\d+)?)(?:[-+ ](\S+))?")


def nb_complete(data: bytes) -> bool:
    """One NetBIOS session message (SMB inside, or a session service answer)."""
    if len(data) < 4:
        return False
    if data[0] == 0:
        return len(data) >= 4 + int.from_bytes(data[1:4], "big")
    if data[0] in (0x82, 0x83, 0x84, 0x85):
        return len(data) >= 4 + int(struct.unpack_from("!H", data, 2)[0])
    return True


def parse_smb2_negotiate(data: bytes) -> dict[str, Any] | None:
    if len(data) < 4 + 64 + 64 or data[4:8] != b"\xfeSMB":
        return None
    status, command = struct.unpack_from("<IH", data, 4 + 8)
    if command != 0:
        return None
    out: dict[str, Any] = {"status": status}
    if status != STATUS_SUCCESS:
        return out
    b = 4 + 64
    size, mode, dialect = struct.unpack_from("<HHH", data, b)
    if size != 65:
        return None
    out["security_mode"] = mode
    out["dialect"] = dialect
    out["server_guid"] = data[b + 8: b + 24].hex()
    out["capabilities"] = struct.unpack_from("<I", data, b + 24)[0]
    sec_off, sec_len = struct.unpack_from("<HH", data, b + 56)
    out["security_blob"] = data[4 + sec_off: 4 + sec_off + sec_len] if sec_off else b""
    return out


def parse_smb1_negotiate(data: bytes) -> dict[str, Any] | None:
    if len(data) < 4 + 32 + 3 or data[4:8] != b"\xffSMB" or data[8] != 0x72:
        return None
    status = struct.unpack_from("<I", data, 9)[0]
    out: dict[str, Any] = {"status": status}
    words = data[4 + 32]
    if status == 0 and words >= 1:
        out["dialect_index"] = struct.unpack_from("<H", data, 4 + 33)[0]
        if words >= 17:
            out["security_mode"] = data[4 + 35]
    return out


def signing(mode: int) -> str:
    if mode & 0x02:
        return "required"
    if mode & 0x01:
        return "enabled"
    return "disabled"


def smb1_signing(mode: int) -> str:
    if mode & 0x08:
        return "required"
    if mode & 0x04:
        return "enabled"
    return "disabled"


AV_NAMES = {1: "netbios_computer", 2: "netbios_domain", 3: "dns_computer", 4: "dns_domain",
            5: "dns_tree"}


def parse_ntlm_challenge(blob: bytes) -> dict[str, Any] | None:
    """Names and OS version from an NTLMSSP CHALLENGE found anywhere in *blob*."""
    start = blob.find(b"NTLMSSP\x00\x02\x00\x00\x00")
    if start < 0:
        return None
    msg = blob[start:]
    if len(msg) < 48:
        return None
    flags = struct.unpack_from("<I", msg, 20)[0]
    out: dict[str, Any] = {}
    tlen, _tmax, toff = struct.unpack_from("<HHI", msg, 40)
    pos, end = toff, min(len(msg), toff + tlen)
    while pos + 4 <= end:
        av_id, av_len = struct.unpack_from("<HH", msg, pos)
        pos += 4
        if av_id == 0 or pos + av_len > end:
            break
        if av_id in AV_NAMES:
            out[AV_NAMES[av_id]] = clean(msg[pos: pos + av_len].decode("utf-16-le", "replace"),
                                         100)
        pos += av_len
    if flags & 0x02000000 and len(msg) >= 56:
        major, minor, build = struct.unpack_from("<BBH", msg, 48)
        out["os_version"] = f"{major}.{minor}.{build}"
    return out


def windows_name(version: str) -> str | None:
    parts = version.split(".")
    if len(parts) != 3:
        return None
    major_minor = ".".join(parts[:2])
    return {"5.1": "Windows XP", "5.2": "Windows Server 2003", "6.0": "Windows Vista/2008",
            "6.1": "Windows 7/2008 R2", "6.2": "Windows 8/2012", "6.3": "Windows 8.1/2012 R2",
            "10.0": "Windows 10/11/Server 2016+"}.get(major_minor)


def dialog(ctx: Context, facts: Facts) -> Dialog:
    nonce = ctx.nonce.to_bytes(8, "big", signed=False) if ctx.nonce >= 0 else bytes(8)
    guid = (nonce * 2)[:16]
    salt = (nonce * 4)[:32]
    needs_session = ctx.port == 139

    def open_session() -> Step:
        """Port 139 wants a NetBIOS session first; True when we may talk SMB."""
        if not needs_session:
            return True
        r = yield from exchange(session_request(), nb_complete, limit=1024)
        return r.data[:1] == b"\x82"

    if not (yield from open_session()):
        return
    all_dialects = sorted(DIALECTS)
    r = yield from exchange(negotiate_request(all_dialects, guid, salt), nb_complete,
                            limit=65536)
    facts.saw(r.data)
    neg = parse_smb2_negotiate(r.data)
    smb2 = neg is not None and neg.get("status") == STATUS_SUCCESS
    accepted: list[str] = []
    if neg is not None:
        facts.identify("microsoft-ds" if not needs_session else "netbios-ssn", 10, "probe")
    if smb2 and neg is not None:
        facts.extra["signing"] = signing(neg["security_mode"])
        best = DIALECTS.get(neg["dialect"], f"0x{neg['dialect']:04x}")
        facts.extra["max_dialect"] = best
        if SAMBA_HINT in neg["security_blob"]:
            facts.set_product("Samba smbd", "3.X - 4.X",
                              cpe=["cpe:2.3:a:samba:samba:*:*:*:*:*:*:*:*"])
            facts.extra.setdefault("ostype", "Unix")
        else:
            facts.set_product("Microsoft Windows SMB")
        if ctx.intensity >= 7:
            r = yield from exchange(session_setup_request(1, spnego_init(ntlm_negotiate())),
                                    nb_complete, limit=65536)
            info = parse_ntlm_challenge(r.data)
            if info:
                facts.extra["ntlm_info"] = info
                version = info.get("os_version")
                if version and facts.product != "Samba smbd":
                    name = windows_name(version)
                    if name:
                        facts.extrainfo = f"{name}, build {version}"
                    facts.extra.setdefault("ostype", "Windows")
                host = info.get("netbios_computer")
                domain = info.get("netbios_domain")
                if host:
                    note = f"host {host}" + (f", domain {domain}" if domain else "")
                    facts.extrainfo = f"{facts.extrainfo}; {note}" if facts.extrainfo else note
        if ctx.intensity >= 5:
            for code in all_dialects:
                if not (yield from reconnect()):
                    break
                if not (yield from open_session()):
                    break
                r = yield from exchange(negotiate_request([code], guid, salt), nb_complete,
                                        limit=65536)
                one = parse_smb2_negotiate(r.data)
                if one is not None and one.get("status") == 0 and one.get("dialect") == code:
                    accepted.append(DIALECTS[code])
        else:
            accepted.append(best)
    # SMBv1
    if neg is None or ctx.intensity >= 3:
        if neg is not None and not (yield from reconnect()):
            facts.extra["dialects"] = accepted
            return
        if not (yield from open_session()):
            return
        r = yield from exchange(smb1_negotiate([SMB1_DIALECT]), nb_complete, limit=65536)
        if neg is None:
            facts.saw(r.data)
        one1 = parse_smb1_negotiate(r.data)
        if one1 is not None:
            facts.identify("microsoft-ds" if not needs_session else "netbios-ssn", 10, "probe")
            ok = one1.get("status") == 0 and one1.get("dialect_index") == 0
            facts.extra["smbv1"] = ok
            if ok:
                accepted.insert(0, SMB1_DIALECT)
                if not smb2 and "security_mode" in one1:
                    facts.extra["signing"] = smb1_signing(one1["security_mode"])
                if ctx.intensity >= 7:
                    yield from _smb1_native(facts)
        elif facts.identified:
            facts.extra["smbv1"] = False
    if facts.identified:
        facts.extra["dialects"] = accepted


def _smb1_native(facts: Facts) -> Step:
    """SMBv1 only: the session setup's NativeOS / NativeLanMan strings, where Samba names
    its exact version (``Samba 4.17.12-Debian``); SMB2 has no such field."""
    r = yield from exchange(smb1_session_setup(spnego_init(ntlm_negotiate())), nb_complete,
                            limit=65536)
    info = parse_smb1_session_setup(r.data)
    if info is None:
        return
    for key in ("native_os", "native_lanman", "primary_domain"):
        if key in info:
            facts.extra[key] = info[key]
    if "ntlm_info" not in facts.extra:
        ntlm = parse_ntlm_challenge(info.get("security_blob", b""))
        if ntlm:
            facts.extra["ntlm_info"] = ntlm
    m = SAMBA_LANMAN.match(str(info.get("native_lanman", "")))
    if m:
        version = m.group(1)
        facts.product = "Samba smbd"
        facts.version = version
        facts.cpe = [f"cpe:2.3:a:samba:samba:{version}:*:*:*:*:*:*:*"]
        facts.extra.setdefault("ostype", "Unix")


PROTOCOL = ServiceProtocol(name="microsoft-ds", dialog=dialog, rarity=4,
                           hints=("microsoft-ds", "netbios-ssn"))
