"""TLS facts: certificate details (with ``cryptography``) and protocol-version probing.

Two halves, both pure:

* :func:`certificate_facts` turns the DER certificates a server sent into the ``tls``
  facts of docs/service-facts.md (subject, SANs, issuer, validity, key, self-signed,
  private names inside the certificate, fingerprint ...).
* :func:`client_hello` builds a raw ClientHello for one protocol version (SSLv3 ..
  TLS 1.3) and :class:`HelloParser` reads the server's answer incrementally (ServerHello,
  then the Certificate message of TLS <= 1.2, which travels in clear). The runner sends one
  hello per version in parallel, so the versions a server accepts are learned without
  depending on what the local OpenSSL still allows, and without completing a handshake.
"""

from __future__ import annotations

import contextlib
import ipaddress
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

VERSIONS: dict[str, int] = {
    "SSLv3": 0x0300,
    "TLSv1.0": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}
VERSION_NAMES = {v: k for k, v in VERSIONS.items()}

# Python's ssl module names -> ours
SSL_MODULE_NAMES = {"SSLv3": "SSLv3", "TLSv1": "TLSv1.0", "TLSv1.1": "TLSv1.1",
                    "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}

RECORD_LIMIT = 65536
"""At most this much of a server's handshake is read (certificate chains included)."""

_PRIVATE_SUFFIXES = (".local", ".internal", ".lan", ".corp", ".home", ".localdomain",
                     ".intranet", ".intra", ".private", ".home.arpa", ".localhost")


# --------------------------------------------------------------------------------------
# certificates


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    try:
        attrs = name.get_attributes_for_oid(oid)
    except Exception:
        return None
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("latin-1")


def _rfc4514(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except Exception:
        return ""


def is_private_name(name: str) -> bool:
    """An IP address that is not globally routable, or a name that looks internal
    (``.local``, ``.internal``, ``.lan``, ``.corp``, single-label ...)."""
    text = name.strip().rstrip(".").lower()
    if not text:
        return False
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return not ip.is_global
    text = text.removeprefix("*.")
    if "." not in text:
        return True
    return text.endswith(_PRIVATE_SUFFIXES)


def _key_facts(cert: x509.Certificate) -> dict[str, Any]:
    try:
        key = cert.public_key()
    except Exception:
        return {}
    if isinstance(key, rsa.RSAPublicKey):
        return {"key_type": "RSA", "key_bits": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"key_type": "EC", "key_bits": key.curve.key_size, "key_curve": key.curve.name}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"key_type": "Ed25519", "key_bits": 256}
    if isinstance(key, ed448.Ed448PublicKey):
        return {"key_type": "Ed448", "key_bits": 456}
    if isinstance(key, dsa.DSAPublicKey):
        return {"key_type": "DSA", "key_bits": key.key_size}
    return {"key_type": type(key).__name__}


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_facts(chain: list[bytes], now: datetime, *,
                      whole_chain: bool = False) -> dict[str, Any]:
    """The ``tls`` certificate facts of the leaf (``chain[0]``); ``chain_length`` is
    ``len(chain)`` when *whole_chain* says it is what the server sent. A certificate that
    cannot be parsed gives ``{"cert_error": ...}``: a bad certificate is data, not an exception."""
    if not chain:
        return {}
    try:
        cert = x509.load_der_x509_certificate(chain[0])
    except Exception as exc:
        return {"cert_error": f"unparsable certificate: {str(exc)[:200]}"}
    facts: dict[str, Any] = {
        "subject": _rfc4514(cert.subject),
        "issuer": _rfc4514(cert.issuer),
    }
    cn = _name_attr(cert.subject, NameOID.COMMON_NAME)
    if cn is not None:
        facts["subject_cn"] = cn
    dns: list[str] = []
    ips: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [str(d) for d in san.get_values_for_type(x509.DNSName)][:100]
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)][:100]
    except x509.ExtensionNotFound:
        pass
    except Exception as exc:
        facts["cert_error"] = f"bad extensions: {str(exc)[:200]}"
    facts["san_dns"] = dns
    facts["san_ip"] = ips
    nb: datetime | None = None
    na: datetime | None = None
    with contextlib.suppress(Exception):
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    if nb is not None and na is not None:
        facts["not_before"] = _iso(nb)
        facts["not_after"] = _iso(na)
        facts["expired"] = na < now
        facts["not_yet_valid"] = nb > now
        facts["days_left"] = int((na - now).total_seconds() // 86400)
    facts["self_signed"] = _self_signed(cert)
    facts.update(_key_facts(cert))
    try:
        oid = cert.signature_algorithm_oid
        facts["signature_algorithm"] = getattr(oid, "_name", None) or oid.dotted_string
    except Exception:
        pass
    facts["serial"] = format(cert.serial_number, "x")
    facts["sha256"] = cert.fingerprint(hashes.SHA256()).hex()
    names = [n for n in (cn, *dns, *ips) if n]
    private = [n for n in dict.fromkeys(names) if is_private_name(n)]
    facts["private_names"] = private
    if whole_chain:
        facts["chain_length"] = len(chain)
    return facts


# --------------------------------------------------------------------------------------
# raw ClientHello


# Cipher suites offered for SSLv3..TLS 1.2: modern AEAD first, then CBC, 3DES, RC4, DES
# and export suites, so a server that accepts only old ones still answers.
_LEGACY_SUITES = (
    0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009E, 0x009F, 0xC009, 0xC013,
    0xC00A, 0xC014, 0xC023, 0xC027, 0xC024, 0xC028, 0x0033, 0x0039, 0x0067, 0x006B,
    0x009C, 0x009D, 0x002F, 0x0035, 0x003C, 0x003D, 0x0041, 0x0084, 0x0045, 0x0088,
    0x0096, 0x0032, 0x0038, 0xC012, 0x0016, 0x0013, 0x000A, 0xC011, 0xC007, 0x0005,
    0x0004, 0x0007, 0x0009, 0x0015, 0x0012, 0x0003, 0x0006, 0x0008, 0x0014, 0x0011,
    0x00FF,  # TLS_EMPTY_RENEGOTIATION_INFO_SCSV
)
_TLS13_SUITES = (0x1301, 0x1302, 0x1303)
_GROUPS = (0x001D, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101)
_SIGALGS = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
            0x0807, 0x0808, 0x0203, 0x0201, 0x0402, 0x0502, 0x0602, 0x0202)


def _ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def _u16list(values: tuple[int, ...]) -> bytes:
    data = b"".join(struct.pack("!H", v) for v in values)
    return struct.pack("!H", len(data)) + data


def client_hello(version: str, *, random: bytes, key_share: bytes | None = None,
                 server_name: str | None = None) -> bytes:
    """One TLS record holding a ClientHello that offers exactly *version* (``SSLv3`` ..
    ``TLSv1.3``). *random* is 32 bytes; for TLS 1.3 *key_share* is an X25519 public key
    (32 bytes; the handshake is never completed, so any value the server accepts will do).
    """
    code = VERSIONS[version]
    if len(random) != 32:
        raise ValueError("random must be 32 bytes")
    tls13 = code == 0x0304
    legacy = 0x0303 if tls13 else code
    suites = (_TLS13_SUITES + _LEGACY_SUITES) if tls13 else _LEGACY_SUITES
    body = struct.pack("!H", legacy) + random
    session_id = random[:32] if tls13 else b""  # middlebox compatibility mode
    body += bytes([len(session_id)]) + session_id
    body += _u16list(suites)
    body += b"\x01\x00"  # compression: null
    exts = b""
    if code >= 0x0301:
        if server_name and not _is_ip(server_name):
            host = server_name.encode("idna") if not server_name.isascii() else \
                server_name.encode()
            entry = b"\x00" + struct.pack("!H", len(host)) + host
            exts += _ext(0, struct.pack("!H", len(entry)) + entry)
        exts += _ext(10, _u16list(_GROUPS))
        exts += _ext(11, b"\x01\x00")
        if code >= 0x0303:
            exts += _ext(13, _u16list(_SIGALGS))
        exts += _ext(23, b"")  # extended master secret
        exts += _ext(35, b"")  # session ticket
        if tls13:
            exts += _ext(43, b"\x02\x03\x04")
            exts += _ext(45, b"\x01\x01")
            share = key_share if key_share is not None else random
            ks = struct.pack("!HH", 0x001D, len(share)) + share
            exts += _ext(51, struct.pack("!H", len(ks)) + ks)
        body += struct.pack("!H", len(exts)) + exts
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    record_version = 0x0300 if code == 0x0300 else 0x0301
    return struct.pack("!BHH", 22, record_version, len(handshake)) + handshake


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------
# the server's answer


_HRR_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          40: "handshake_failure", 42: "bad_certificate", 47: "illegal_parameter",
          50: "decode_error", 70: "protocol_version", 71: "insufficient_security",
          80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
          109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name"}


@dataclass
class HelloResult:
    """What a server answered to one raw ClientHello."""

    status: str = "incomplete"  # accepted | alert | not-tls | incomplete
    version: str | None = None  # negotiated
    cipher: int | None = None
    certificates: list[bytes] = field(default_factory=list)
    alert: str | None = None
    done: bool = False  # nothing more worth reading

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


class HelloParser:
    """Incremental reader of a server's first flight (records in, :class:`HelloResult`
    out). Feed it the whole buffer each time (it re-parses; buffers are bounded)."""

    def __init__(self, limit: int = RECORD_LIMIT) -> None:
        self.limit = limit

    def parse(self, data: bytes) -> HelloResult:
        res = HelloResult()
        if not data:
            return res
        if data[0] not in (20, 21, 22, 23) or (len(data) > 1 and data[1] not in (2, 3)):
            res.status = "not-tls"
            res.done = True
            return res
        hs = bytearray()
        pos = 0
        while pos + 5 <= len(data):
            ctype, _ver, length = struct.unpack_from("!BHH", data, pos)
            if ctype not in (20, 21, 22, 23) or length > 18432:
                res.status = "not-tls" if res.status == "incomplete" else res.status
                res.done = True
                return res
            if pos + 5 + length > len(data):
                break
            frag = data[pos + 5: pos + 5 + length]
            pos += 5 + length
            if ctype == 21 and len(frag) >= 2:
                if res.status != "accepted":
                    res.status = "alert"
                res.alert = ALERTS.get(frag[1], f"alert {frag[1]}")
                res.done = True
                return res
            if ctype == 22:
                hs += frag
            elif ctype in (20, 23) and res.status == "accepted":
                # ChangeCipherSpec / encrypted data: the clear part is over (TLS 1.3)
                res.done = True
        self._handshake(bytes(hs), res)
        if len(data) >= self.limit:
            res.done = True
        return res

    def _handshake(self, hs: bytes, res: HelloResult) -> None:
        pos = 0
        while pos + 4 <= len(hs):
            mtype = hs[pos]
            length = int.from_bytes(hs[pos + 1: pos + 4], "big")
            if pos + 4 + length > len(hs):
                return
            body = hs[pos + 4: pos + 4 + length]
            pos += 4 + length
            if mtype == 2:
                self._server_hello(body, res)
                if res.version == "TLSv1.3":
                    res.done = True  # the rest is encrypted
                    return
            elif mtype == 11 and res.status == "accepted":
                res.certificates = _certificate_list(body)
            elif mtype == 14 and res.status == "accepted":  # ServerHelloDone
                res.done = True
                return

    @staticmethod
    def _server_hello(body: bytes, res: HelloResult) -> None:
        if len(body) < 38:
            res.status = "not-tls"
            res.done = True
            return
        version = struct.unpack_from("!H", body, 0)[0]
        random = body[2:34]
        sid_len = body[34]
        p = 35 + sid_len
        if p + 3 > len(body):
            res.status = "not-tls"
            res.done = True
            return
        cipher = struct.unpack_from("!H", body, p)[0]
        p += 3  # cipher + compression
        if p + 2 <= len(body):
            ext_len = struct.unpack_from("!H", body, p)[0]
            p += 2
            end = min(len(body), p + ext_len)
            while p + 4 <= end:
                etype, elen = struct.unpack_from("!HH", body, p)
                if etype == 43 and elen == 2:
                    version = struct.unpack_from("!H", body, p + 4)[0]
                p += 4 + elen
        res.status = "accepted"
        res.version = VERSION_NAMES.get(version, f"0x{version:04x}")
        res.cipher = cipher
        if random == _HRR_RANDOM:
            res.done = True


def _certificate_list(body: bytes) -> list[bytes]:
    out: list[bytes] = []
    if len(body) < 3:
        return out
    total = int.from_bytes(body[0:3], "big")
    p, end = 3, min(len(body), 3 + total)
    while p + 3 <= end and len(out) < 20:
        n = int.from_bytes(body[p: p + 3], "big")
        p += 3
        if p + n > end:
            break
        out.append(body[p: p + n])
        p += n
    return out


def hello_complete(data: bytes) -> bool:
    """``Recv.complete`` for the answer to a raw ClientHello."""
    return HelloParser().parse(data).done


def looks_like_tls(data: bytes) -> bool:
    """A TLS record header (handshake or alert) at the start of *data*."""
    return len(data) >= 3 and data[0] in (21, 22) and data[1] == 3 and data[2] <= 4

