"""TLS facts: certificates (built with cryptography), raw ClientHellos and the parser of
the server's first flight."""

from __future__ import annotations

import ipaddress
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from portscope.services import tls

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def make_cert(*, cn: str = "www.example.com", dns: tuple[str, ...] = ("www.example.com",),
              ips: tuple[str, ...] = (), issuer_key: object = None, issuer_cn: str | None = None,
              days: int = 90, start: datetime = NOW - timedelta(days=10), ec_key: bool = False
              ) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()) if ec_key else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn or cn)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(0x1234ABCD)
               .not_valid_before(start).not_valid_after(start + timedelta(days=days)))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    signer = issuer_key if issuer_key is not None else key
    cert = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.DER)


def test_self_signed_with_private_names() -> None:
    der = make_cert(cn="router", dns=("router.lan", "192.168.1.1.nip.example", "*.corp"),
                    ips=("192.168.1.1", "203.0.113.5"))
    f = tls.certificate_facts([der], NOW, whole_chain=True)
    assert f["subject"] == "CN=router" and f["subject_cn"] == "router"
    assert f["self_signed"] is True
    assert f["key_type"] == "RSA" and f["key_bits"] == 2048
    assert f["signature_algorithm"] == "sha256WithRSAEncryption"
    assert f["serial"] == "1234abcd"
    assert f["san_ip"] == ["192.168.1.1", "203.0.113.5"]
    # single-label CN, .lan, *.corp, RFC 1918 and (not globally routable) TEST-NET-3
    assert set(f["private_names"]) == {"router", "router.lan", "*.corp", "192.168.1.1",
                                       "203.0.113.5"}
    assert f["chain_length"] == 1
    assert f["expired"] is False and f["days_left"] == 80
    assert len(f["sha256"]) == 64


def test_ca_issued_expired_ec() -> None:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = make_cert(cn="www.example.org", dns=("www.example.org",), issuer_key=ca_key,
                    issuer_cn="Example CA", days=30, start=NOW - timedelta(days=60), ec_key=True)
    f = tls.certificate_facts([der], NOW)
    assert f["self_signed"] is False
    assert f["issuer"] == "CN=Example CA"
    assert f["expired"] is True and f["days_left"] == -30
    assert f["key_type"] == "EC" and f["key_bits"] == 256
    assert f["private_names"] == []
    assert "chain_length" not in f  # only the leaf was seen


def test_issuer_equal_subject_but_foreign_signature_is_not_self_signed() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = make_cert(cn="fake", issuer_key=other)
    assert tls.certificate_facts([der], NOW)["self_signed"] is False


def test_garbage_certificate_is_data() -> None:
    assert "cert_error" in tls.certificate_facts([b"\x30\x03\x02\x01\x00"], NOW)
    assert tls.certificate_facts([], NOW) == {}


@pytest.mark.parametrize(("name", "private"), [
    ("10.0.0.1", True), ("fd00::1", True), ("8.8.8.8", False), ("printer.local", True),
    ("db.internal", True), ("www.example.com", False), ("localhost", True),
    ("*.corp", True), ("", False),
])
def test_private_names(name: str, private: bool) -> None:
    assert tls.is_private_name(name) is private


def _parse_hello(record: bytes) -> tuple[int, int, list[int], dict[int, bytes]]:
    assert record[0] == 22
    hs = record[5:]
    assert hs[0] == 1 and int.from_bytes(hs[1:4], "big") == len(hs) - 4
    body = hs[4:]
    version = struct.unpack_from("!H", body)[0]
    p = 2 + 32
    p += 1 + body[p]
    n = struct.unpack_from("!H", body, p)[0]
    suites = [struct.unpack_from("!H", body, p + 2 + i)[0] for i in range(0, n, 2)]
    p += 2 + n
    p += 1 + body[p]
    exts: dict[int, bytes] = {}
    if p < len(body):
        end = p + 2 + struct.unpack_from("!H", body, p)[0]
        p += 2
        while p < end:
            t, ln = struct.unpack_from("!HH", body, p)
            exts[t] = body[p + 4: p + 4 + ln]
            p += 4 + ln
    return struct.unpack_from("!H", record, 1)[0], version, suites, exts


def test_client_hellos() -> None:
    rnd = bytes(range(32))
    rec, ver, suites, exts = _parse_hello(tls.client_hello("SSLv3", random=rnd))
    assert (rec, ver, exts) == (0x0300, 0x0300, {})
    rec, ver, suites, exts = _parse_hello(tls.client_hello("TLSv1.2", random=rnd,
                                                           server_name="www.example.com"))
    assert (rec, ver) == (0x0301, 0x0303)
    assert 13 in exts and 43 not in exts and b"www.example.com" in exts[0]
    assert 0x1301 not in suites and 0xC02F in suites
    rec, ver, suites, exts = _parse_hello(tls.client_hello("TLSv1.3", random=rnd,
                                                           key_share=bytes(32),
                                                           server_name="198.18.0.2"))
    assert ver == 0x0303 and exts[43] == b"\x02\x03\x04" and 51 in exts and 0 not in exts
    assert suites[:3] == [0x1301, 0x1302, 0x1303]
    with pytest.raises(ValueError):
        tls.client_hello("TLSv1.2", random=b"short")


def _record(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def _hs(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def _server_hello(version: int, cipher: int, *, supported: int | None = None,
                  random: bytes = bytes(32)) -> bytes:
    exts = b""
    if supported is not None:
        exts = struct.pack("!HHH", 43, 2, supported)
    body = struct.pack("!H", version) + random + b"\x00" + struct.pack("!HB", cipher, 0)
    body += struct.pack("!H", len(exts)) + exts
    return _hs(2, body)


def test_hello_parser_tls12_with_chain_across_records() -> None:
    leaf, ca = make_cert(), make_cert(cn="CA")
    certs = b"".join(len(c).to_bytes(3, "big") + c for c in (leaf, ca))
    flight = _server_hello(0x0303, 0xC02F) + _hs(11, len(certs).to_bytes(3, "big") + certs) + \
        _hs(14, b"")
    data = _record(22, flight[:500]) + _record(22, flight[500:])
    parser = tls.HelloParser()
    partial = parser.parse(data[:700])
    assert partial.accepted and not partial.done and partial.version == "TLSv1.2"
    res = parser.parse(data)
    assert res.done and res.cipher == 0xC02F
    assert res.certificates == [leaf, ca]
    assert tls.hello_complete(data)


def test_hello_parser_tls13_alert_hrr_and_garbage() -> None:
    res = tls.HelloParser().parse(_record(22, _server_hello(0x0303, 0x1301, supported=0x0304)))
    assert res.accepted and res.version == "TLSv1.3" and res.done
    hrr = tls.HelloParser().parse(_record(22, _server_hello(
        0x0303, 0x1301, supported=0x0304, random=bytes.fromhex(
            "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"))))
    assert hrr.accepted and hrr.version == "TLSv1.3"
    alert = tls.HelloParser().parse(_record(21, b"\x02\x46"))
    assert alert.status == "alert" and alert.alert == "protocol_version" and alert.done
    junk = tls.HelloParser().parse(b"HTTP/1.1 400 Bad Request\r\n")
    assert junk.status == "not-tls" and junk.done
    assert not tls.HelloParser().parse(b"\x16\x03").done
    assert tls.looks_like_tls(b"\x16\x03\x01\x00\x05") and not tls.looks_like_tls(b"SSH-2.0")
