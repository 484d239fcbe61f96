"""Protocol dialogs against hand-built answers (from the protocol specifications and the
greetings of daemons not in the lab)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from portscope.services import PROTOCOLS, ber, bson, identify
from portscope.services import http as httpmod
from portscope.services import mongodb as mongomod
from portscope.services import netbios as nbmod
from portscope.services import smb as smbmod
from portscope.services import snmp as snmpmod
from portscope.services.base import (
    Context,
    Facts,
    Reconnect,
    Reply,
    Send,
    StartTLS,
    TLSResult,
    run_scripted,
)


def run(proto: str, answers: list[Any], *, first: bytes = b"", port: int = 1234,
        transport: str = "tcp", **ctx: Any) -> tuple[dict[str, Any], list[Any]]:
    p = PROTOCOLS[proto]
    factory = p.udp if transport == "udp" else p.dialog
    assert factory is not None
    facts = Facts()
    made = run_scripted(factory(Context("198.18.0.2", port, transport=transport,
                                        first=first, nonce=0x1234, **ctx), facts), answers)
    return facts.to_service().to_dict(), made


def sent(made: list[Any]) -> list[bytes]:
    return [r.data for r in made if isinstance(r, Send)]


# --- SSH ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("ident", "product", "version", "extrainfo"), [
    (b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6", "OpenSSH", "8.9p1",
     "Ubuntu 3ubuntu0.6; protocol 2.0"),
    (b"SSH-2.0-OpenSSH_for_Windows_8.1", "OpenSSH for Windows", "8.1", "protocol 2.0"),
    (b"SSH-2.0-dropbear_2022.83", "Dropbear sshd", "2022.83", "protocol 2.0"),
    (b"SSH-1.99-Cisco-1.25", "Cisco SSH", "1.25", "protocol 1.99"),
    (b"SSH-2.0-ROSSSH", "MikroTik RouterOS sshd", None, "protocol 2.0"),
    (b"SSH-2.0-libssh_0.9.6", "libssh", "0.9.6", "protocol 2.0"),
    (b"SSH-2.0-Go", "Golang x/crypto/ssh server", None, "protocol 2.0"),
    (b"SSH-2.0-WeirdServer_3.1", "WeirdServer", "3.1", "protocol 2.0"),
])
def test_ssh_identification(ident: bytes, product: str, version: str | None,
                            extrainfo: str) -> None:
    s, _ = run("ssh", [], first=ident + b"\r\n", intensity=0)
    assert (s["name"], s["product"], s["version"], s["extrainfo"]) == \
        ("ssh", product, version, extrainfo)
    assert s["confidence"] >= 8


def test_ssh_lines_before_identification_and_kexinit() -> None:
    lists = [b"curve25519-sha256", b"ssh-ed25519", b"aes128-ctr", b"aes128-ctr",
             b"hmac-sha2-256", b"hmac-sha2-256", b"none", b"none", b"", b""]
    payload = b"\x14" + bytes(16) + b"".join(struct.pack("!I", len(x)) + x for x in lists) + \
        b"\x00" + bytes(4)
    padding = 8 - (len(payload) + 5) % 8 + 8
    packet = struct.pack("!IB", len(payload) + padding + 1, padding) + payload + bytes(padding)
    s, made = run("ssh", [b"SSH-2.0-OpenSSH_9.6\r\n", packet], first=b"Welcome\r\n")
    assert s["product"] == "OpenSSH" and s["version"] == "9.6"
    assert s["extra"]["kex"] == ["curve25519-sha256"]
    assert s["extra"]["macs"] == ["hmac-sha2-256"]
    assert sent(made) == [b"SSH-2.0-portscope\r\n"]


def test_ssh_garbage_kexinit_is_ignored() -> None:
    s, _ = run("ssh", [b"\xff\xff\xff\xff" + bytes(40)], first=b"SSH-2.0-OpenSSH_9.6\r\n")
    assert s["product"] == "OpenSSH" and "kex" not in s["extra"]


# --- FTP / SMTP / POP3 / IMAP --------------------------------------------------------------


def test_ftp_proftpd_features_no_anonymous() -> None:
    s, made = run("ftp", [
        b"211-Features:\r\n AUTH TLS\r\n MDTM\r\n211 End\r\n",
        b"331 Password required for anonymous\r\n",
        b"530 Login incorrect.\r\n",
        b"221 Goodbye.\r\n",
    ], first=b"220 ProFTPD 1.3.8 Server (Debian) [198.18.0.2]\r\n", intensity=1)
    assert (s["product"], s["version"]) == ("ProFTPD", "1.3.8")
    assert s["extra"]["anonymous_login"] is False
    assert s["extra"]["auth_tls"] is True
    assert sent(made)[:2] == [b"FEAT\r\n", b"USER anonymous\r\n"]


def test_ftp_without_auth_checks_never_logs_in() -> None:
    _s, made = run("ftp", [b"211 no features\r\n", b"221 bye\r\n"],
                   first=b"220 Microsoft FTP Service\r\n", auth_checks=False)
    assert not any(d.startswith(b"USER") for d in sent(made))


def test_ftp_dialog_gives_up_on_an_smtp_server() -> None:
    s, _ = run("ftp", [b"502 5.5.2 Error: command not recognized\r\n"],
               first=b"220 host.example Welcome\r\n")
    assert s["method"] == "port-table"


def test_smtp_exim_auth_before_tls_and_starttls() -> None:
    s, made = run("smtp", [
        b"250-mx.example Hello\r\n250-SIZE 52428800\r\n250-AUTH PLAIN LOGIN\r\n"
        b"250-STARTTLS\r\n250 HELP\r\n",
        b"550 5.1.1 <postmaster>: unknown\r\n",
        b"502 EXPN disabled\r\n",
        b"220 TLS go ahead\r\n",
        TLSResult(True, {"negotiated_version": "TLSv1.3"}),
        b"250-mx.example Hello\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n",
        b"221 bye\r\n",
    ], first=b"220 mx.example ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n")
    assert (s["product"], s["version"]) == ("Exim smtpd", "4.96")
    assert s["extra"]["auth_mechanisms"] == ["PLAIN", "LOGIN"]
    assert s["extra"]["auth_before_tls"] is True
    assert s["extra"]["vrfy"] is True and s["extra"]["expn"] is False
    assert any(isinstance(r, StartTLS) for r in made)


@pytest.mark.parametrize(("greeting", "product", "version"), [
    (b"220 mail.example.com ESMTP Sendmail 8.17.1/8.17.1; Mon, 1 Jan 2024", "Sendmail",
     "8.17.1"),
    (b"220 EX01.corp.example Microsoft ESMTP MAIL Service ready at Mon, 1 Jan 2024",
     "Microsoft ESMTP", None),
    (b"220 mx.example ESMTP Postfix (Debian/GNU)", "Postfix smtpd", None),
    (b"220 mx.example ESMTP OpenSMTPD", "OpenSMTPD", None),
])
def test_smtp_greetings(greeting: bytes, product: str, version: str | None) -> None:
    s, _ = run("smtp", [b"500 no\r\n", b"500 no\r\n"], first=greeting + b"\r\n", intensity=0)
    assert (s["name"], s["product"], s["version"]) == ("smtp", product, version)


def test_pop3_dovecot_capabilities() -> None:
    s, _ = run("pop3", [
        b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nSTLS\r\nUSER\r\n"
        b"SASL PLAIN\r\n.\r\n",
        b"+OK Begin TLS negotiation now.\r\n",
        TLSResult(True, {}),
        b"+OK Logging out\r\n",
    ], first=b"+OK Dovecot (Debian) ready.\r\n")
    assert (s["name"], s["product"]) == ("pop3", "Dovecot pop3d")
    assert s["extra"]["starttls"] is True
    assert s["extra"]["cleartext_auth"] is True
    assert "STLS" in s["extra"]["capabilities"]


def test_imap_logindisabled_means_no_cleartext_auth() -> None:
    s, made = run("imap", [
        b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS STARTTLS LOGINDISABLED\r\n"
        b"a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n",
    ], first=b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot (Debian) ready.\r\n",
        intensity=1)
    assert (s["name"], s["product"]) == ("imap", "Dovecot imapd")
    assert s["extra"]["cleartext_auth"] is False
    assert s["extra"]["starttls"] is True
    assert sent(made)[0] == b"a1 CAPABILITY\r\n"


# --- HTTP --------------------------------------------------------------------------------


APACHE = (b"HTTP/1.1 301 Moved Permanently\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
          b"Server: Apache/2.4.57 (Debian)\r\nLocation: https://www.example/\r\n"
          b"X-Powered-By: PHP/8.2.7\r\nContent-Length: 60\r\n\r\n"
          b"<html><head><title>301 Moved &amp; gone</title></head></html>")


def test_http_apache_redirect_title_and_methods() -> None:
    s, made = run("http", [
        APACHE, Reply(),
        b"HTTP/1.1 200 OK\r\nAllow: GET,POST,OPTIONS,HEAD,TRACE, PUT\r\n"
        b"Content-Length: 0\r\n\r\n",
    ])
    assert (s["product"], s["version"], s["extrainfo"]) == ("Apache httpd", "2.4.57", "Debian")
    assert s["cpe"] == ["cpe:2.3:a:apache:http_server:2.4.57:*:*:*:*:*:*:*"]
    assert s["extra"]["status"] == 301
    assert s["extra"]["redirect"] == "https://www.example/"
    assert s["extra"]["powered_by"] == "PHP/8.2.7"
    assert s["extra"]["title"] == "301 Moved & gone"
    assert s["extra"]["methods"] == ["GET", "POST", "OPTIONS", "HEAD", "TRACE", "PUT"]
    assert s["extra"]["risky_methods"] == ["TRACE", "PUT"]
    assert s["banner"].startswith("HTTP/1.1 301") and "<html>" not in s["banner"]
    requests = sent(made)
    assert requests[0].startswith(b"GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n")
    assert requests[1].startswith(b"OPTIONS / HTTP/1.1")
    assert any(isinstance(r, Reconnect) for r in made)


@pytest.mark.parametrize(("server", "product", "version"), [
    ("Microsoft-IIS/10.0", "Microsoft IIS httpd", "10.0"),
    ("lighttpd/1.4.69", "lighttpd", "1.4.69"),
    ("Werkzeug/2.2.2 Python/3.11.2", "Werkzeug httpd", "2.2.2"),
    ("openresty/1.21.4.1", "OpenResty web app server", "1.21.4.1"),
    ("Jetty(9.4.51.v20230217)", "Jetty", "9.4.51.v20230217"),
    ("MyServer/3.2", "MyServer", "3.2"),
])
def test_http_server_header_rules(server: str, product: str, version: str) -> None:
    resp = f"HTTP/1.0 200 OK\r\nServer: {server}\r\n\r\n".encode()
    s, _ = run("http", [resp], intensity=2)
    assert (s["product"], s["version"]) == (product, version)


def test_http_plain_request_to_tls_port_asks_for_tls() -> None:
    facts = Facts()
    run_scripted(PROTOCOLS["http"].dialog(Context("198.18.0.2", 443), facts),  # type: ignore[misc]
                 [b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 80\r\n\r\n"
                  b"<html><body>The plain HTTP request was sent to HTTPS port</body></html>"])
    assert facts.extra.get("_wants_tls") is True


def test_http_elasticsearch_without_auth() -> None:
    body = (b'{"name":"node-1","cluster_name":"es","version":{"number":"8.11.3"},'
            b'"tagline":"You Know, for Search"}')
    resp = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: " + \
        str(len(body)).encode() + b"\r\n\r\n" + body
    s, _ = run("http", [resp], intensity=2)
    assert (s["product"], s["version"]) == ("Elasticsearch REST API", "8.11.3")
    assert s["extra"]["auth_required"] is False


def test_http_response_complete_is_bounded() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"
    assert not httpmod.response_complete(head + b"x" * 100)
    assert httpmod.response_complete(head + b"x" * httpmod.BODY_WANTED)
    assert httpmod.response_complete(b"SSH-2.0-OpenSSH\r\n")
    assert not httpmod.response_complete(b"HTT")


# --- DNS / SNMP / NTP / NetBIOS (UDP) ---------------------------------------------------


def test_dns_bind_version_and_open_recursion() -> None:
    import dns.flags
    import dns.message
    import dns.rrset

    q1 = dns.message.from_wire(__import__("portscope.services.dns", fromlist=["query"]).query(
        "version.bind", "TXT", "CH", 0x1234, rd=False))
    a1 = dns.message.make_response(q1)
    a1.answer.append(dns.rrset.from_text("version.bind.", 0, "CH", "TXT",
                                         '"9.18.24-1-Debian"'))
    q2 = dns.message.make_query("example.com", "A")
    q2.id = 0x1235
    a2 = dns.message.make_response(q2)
    a2.flags |= dns.flags.RA
    a2.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", "93.184.215.14"))
    s, _ = run("domain", [a1.to_wire(), a2.to_wire()], transport="udp")
    assert (s["product"], s["version"], s["extrainfo"]) == ("ISC BIND", "9.18.24", "1-Debian")
    assert s["extra"]["recursion"] is True


def test_dns_wrong_id_is_not_an_answer() -> None:
    import dns.message

    q = dns.message.make_query("version.bind", "TXT", "CH")
    q.id = 0x9999
    s, _ = run("domain", [dns.message.make_response(q).to_wire()], transport="udp")
    assert s["method"] == "port-table"


def _snmp_response(version: int, community: bytes, rid: int, values: dict[str, bytes]) -> bytes:
    vbs = ber.sequence(*(ber.sequence(ber.oid(o), v) for o, v in values.items()))
    pdu = ber.sequence(ber.integer(rid), ber.integer(0), ber.integer(0), vbs, tag=0xA2)
    return ber.sequence(ber.integer(version), ber.octets(community), pdu)


def test_snmp_cisco_v2c_only() -> None:
    base = 0x1234
    descr = b"Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11"
    v2 = _snmp_response(1, b"public", base + 1, {
        snmpmod.SYS_DESCR: ber.octets(descr),
        snmpmod.SYS_OBJECT_ID: ber.oid("1.3.6.1.4.1.9.1.1208"),
        snmpmod.SYS_NAME: ber.octets(b"sw1"),
        snmpmod.UCD_VERSION_TAG: ber.tlv(0x80, b""),
    })
    s, made = run("snmp", [v2], transport="udp")
    assert s["name"] == "snmp" and s["product"] == "Cisco SNMP service"
    assert s["extra"]["versions"] == ["v2c"]
    assert s["extra"]["sys_name"] == "sw1"
    assert s["extra"]["ostype"] == "IOS"
    assert s["extra"]["sys_object_id"] == "1.3.6.1.4.1.9.1.1208"
    # three requests, then the two unanswered ones once more
    assert len(sent(made)) == 5


def test_snmp_parsers_reject_garbage() -> None:
    assert snmpmod.parse_response(b"\x30\x82\xff\xff") is None
    assert snmpmod.parse_v3_report(b"garbage") is None
    assert snmpmod.engine_enterprise(bytes.fromhex("80001f888012")) == 8072


def test_ntp_server_and_monlist() -> None:
    nonce = (0x1234 << 20) | 0x5053
    reply = bytes([0x24, 2, 6, 0xEC]) + bytes(8) + bytes([192, 0, 2, 1]) + bytes(8) + \
        struct.pack("!Q", nonce) + bytes(16)
    text = b'version="ntpd 4.2.8p15@1.3728-o", processor="x86_64", system="Linux/6.1.0"'
    ctl = struct.pack("!BBHHHHH", 0x16, 0x82, 0x1234, 0, 0, 0, len(text)) + text
    mon = bytes([0xD7, 0, 3, 42, 0, 1, 0, 72]) + bytes(72)
    s, _ = run("ntp", [reply, ctl, mon], transport="udp")
    assert (s["product"], s["version"]) == ("ntpd", "4.2.8p15")
    assert s["extra"]["stratum"] == 2 and s["extra"]["version"] == 4
    assert s["extra"]["refid"] == "192.0.2.1"
    assert s["extra"]["monlist"] is True
    assert s["extra"]["system"] == "Linux/6.1.0"


def test_netbios_nbstat_samba() -> None:
    names = [(b"FILESRV", 0x00, 0x0400), (b"FILESRV", 0x20, 0x0400),
             (b"WORKGROUP", 0x00, 0x8400)]
    rdata = bytes([len(names)]) + b"".join(n.ljust(15, b" ") + bytes([suf]) +
                                           struct.pack("!H", fl) for n, suf, fl in names)
    rdata += bytes(6) + bytes(40)
    answer = struct.pack("!HHHHHH", 0x1234, 0x8400, 0, 1, 0, 0) + nbmod.encode_name() + \
        struct.pack("!HHIH", 0x21, 1, 0, len(rdata)) + rdata
    s, _ = run("netbios-ns", [answer], transport="udp")
    assert s["product"] == "Samba nmbd"
    assert s["extra"]["netbios_name"] == "FILESRV"
    assert s["extra"]["workgroup"] == "WORKGROUP"
    assert s["extra"]["mac"] == "00:00:00:00:00:00"
    assert len(s["extra"]["names"]) == 3


# --- databases and friends ---------------------------------------------------------------


def _mysql_greeting(version: bytes, plugin: bytes = b"mysql_native_password") -> bytes:
    caps = 0x000FF7FF | 0x00080000 | 0x00008000
    body = b"\x0a" + version + b"\0" + struct.pack("<I", 42) + b"abcdefgh" + b"\0" + \
        struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2) + \
        struct.pack("<H", caps >> 16) + bytes([21]) + bytes(10) + b"ijklmnopqrst\0" + \
        plugin + b"\0"
    return len(body).to_bytes(3, "little") + b"\0" + body


@pytest.mark.parametrize(("version", "product", "number", "extrainfo"), [
    (b"5.5.5-10.11.6-MariaDB-0+deb12u1", "MariaDB", "10.11.6", "0+deb12u1"),
    (b"8.0.36-0ubuntu0.22.04.1", "MySQL", "8.0.36", "0ubuntu0.22.04.1"),
    (b"8.0.36", "MySQL", "8.0.36", None),
])
def test_mysql_greeting(version: bytes, product: str, number: str,
                        extrainfo: str | None) -> None:
    g = _mysql_greeting(version)
    assert identify.classify(g)[0][1] == "mysql"
    s, _ = run("mysql", [], first=g)
    assert (s["name"], s["product"], s["version"], s["extrainfo"]) == \
        ("mysql", product, number, extrainfo)
    assert s["extra"]["protocol"] == 10
    assert s["extra"]["auth_plugin"] == "mysql_native_password"


def test_mysql_host_not_allowed() -> None:
    msg = b"Host '198.18.0.1' is not allowed to connect to this MariaDB server"
    body = b"\xff" + struct.pack("<H", 1130) + msg
    s, _ = run("mysql", [], first=len(body).to_bytes(3, "little") + b"\0" + body)
    assert (s["name"], s["product"], s["extrainfo"]) == ("mysql", "MariaDB", "unauthorized")


def test_memcached_version() -> None:
    s, made = run("memcache", [b"VERSION 1.6.18\r\n", b""])
    assert (s["name"], s["product"], s["version"]) == ("memcache", "Memcached", "1.6.18")
    assert s["extra"]["auth_required"] is False
    assert sent(made)[0] == b"version\r\n"


def _mongo_reply(response_to: int, doc: dict[str, Any]) -> bytes:
    body = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), 99, response_to, 1) + body


def _mongo_msg(response_to: int, doc: dict[str, Any]) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), 99, response_to, 2013) + body


def test_mongodb_open() -> None:
    rid = (0x1234 & 0x3FFFFFFF) + 1
    s, made = run("mongodb", [
        _mongo_reply(rid, {"ismaster": True, "maxWireVersion": 21, "ok": 1.0}),
        _mongo_msg(rid + 1, {"version": "7.0.5", "ok": 1.0}),
        _mongo_msg(rid + 2, {"databases": [{"name": "admin"}, {"name": "shop"}],
                             "ok": 1.0}),
    ])
    assert (s["name"], s["product"], s["version"]) == ("mongodb", "MongoDB", "7.0.5")
    assert s["extra"]["auth_required"] is False
    assert s["extra"]["databases"] == ["admin", "shop"]
    assert struct.unpack_from("<i", sent(made)[1], 12)[0] == mongomod.OP_MSG


def test_bson_round_trip_and_garbage() -> None:
    doc = {"a": 1, "b": "x", "c": {"d": True}, "e": 1.5, "f": [1, "two"]}
    assert bson.loads(bson.encode(doc)) == doc
    with pytest.raises(bson.BSONError):
        bson.loads(b"\xff\xff\xff\x7f\x00")


def test_ldap_openldap_root_dse() -> None:
    def attr(name: str, *values: str) -> bytes:
        return ber.sequence(ber.octets(name), ber.tlv(0x31, b"".join(ber.octets(v)
                                                                     for v in values)))
    entry = ber.sequence(ber.octets(b""), ber.sequence(
        attr("namingContexts", "dc=example,dc=org"), attr("supportedLDAPVersion", "3"),
        attr("structuralObjectClass", "OpenLDAProotDSE")), tag=0x64)
    done = ber.sequence(ber.integer(0, tag=0x0A), ber.octets(b""), ber.octets(b""), tag=0x65)
    mid = (0x1234 & 0x7FFF) + 1
    answer = ber.sequence(ber.integer(mid), entry) + ber.sequence(ber.integer(mid), done)
    s, _ = run("ldap", [answer])
    assert (s["name"], s["product"]) == ("ldap", "OpenLDAP")
    assert s["extra"]["anonymous_bind"] is True
    assert s["extra"]["naming_contexts"] == ["dc=example,dc=org"]


def test_vnc_no_authentication() -> None:
    s, made = run("vnc", [b"\x02\x01\x02"], first=b"RFB 003.008\n")
    assert s["extra"]["protocol_version"] == "RFB 003.008"
    assert s["extra"]["security_types"] == ["None", "VNC Authentication"]
    assert s["extra"]["auth_required"] is False
    assert sent(made) == [b"RFB 003.008\n"]


def test_x11_refused() -> None:
    reason = b"No protocol specified\n"
    pad = (4 - len(reason) % 4) % 4
    answer = bytes([0, len(reason)]) + struct.pack("<HHH", 11, 0, (len(reason) + pad) // 4) + \
        reason + bytes(pad)
    s, _ = run("X11", [answer])
    assert (s["name"], s["extrainfo"]) == ("X11", "access denied")
    assert s["extra"]["auth_required"] is True


def test_x11_truncated_success_reply() -> None:
    # status 1 (success) cut before the vendor length: identified, no crash (fuzz-found)
    answer = bytes([1, 0]) + struct.pack("<HHH", 11, 0, 0)
    s, _ = run("X11", [answer])
    assert s["name"] == "X11"
    assert s["extra"]["auth_required"] is False


def test_telnet_negotiation_and_login_prompt() -> None:
    first = bytes([255, 253, 24, 255, 253, 32, 255, 251, 1, 255, 251, 3])
    s, made = run("telnet", [b"\r\nDebian GNU/Linux 12\r\nhost login: "], first=first)
    assert s["name"] == "telnet" and s["product"] == "Linux telnetd"
    assert s["extra"]["login_prompt"] is True
    assert "DO TERMINAL-TYPE" in s["extra"]["options"]
    assert sent(made)[0] == bytes([255, 252, 24, 255, 252, 32, 255, 253, 1, 255, 253, 3])


def test_rdp_nla_required() -> None:
    def confirm(kind: int, value: int, flags: int = 0x1F) -> bytes:
        neg = struct.pack("<BBHI", kind, flags if kind == 2 else 0, 8, value)
        x224 = bytes([6 + len(neg), 0xD0, 0, 0, 0x12, 0x34, 0]) + neg
        return struct.pack("!BBH", 3, 0, 4 + len(x224)) + x224
    s, _ = run("ms-wbt-server", [
        confirm(2, 2), Reply(), confirm(3, 5), Reply(), confirm(3, 5), Reply(), confirm(2, 2),
        TLSResult(False, error="test"),
    ])
    assert s["name"] == "ms-wbt-server"
    assert s["extra"]["protocols"] == ["hybrid"]
    assert s["extra"]["nla_required"] is True
    assert s["extra"]["failures"]["rdp"] == "HYBRID_REQUIRED_BY_SERVER"
    assert s["product"] == "Microsoft Terminal Services"


def _smb2_negotiate_response(dialect: int, mode: int, blob: bytes = b"") -> bytes:
    header = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0) + \
        bytes(16)
    body = struct.pack("<HHHH", 65, mode, dialect, 0) + bytes(16) + struct.pack("<IIII", 0x7F,
                                                                              8 << 20, 8 << 20,
                                                                              8 << 20)
    body += bytes(16) + struct.pack("<HHI", 128, len(blob), 0) + blob
    msg = header + body
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


def _smb1_negotiate_response(ok: bool) -> bytes:
    status = 0 if ok else 0xC0000002
    header = b"\xffSMB" + struct.pack("<BIBH", 0x72, status, 0x98, 0xC801) + bytes(20)
    words = struct.pack("<HB", 0, 0x03) + bytes(31) if ok else b""
    msg = header + bytes([len(words) // 2]) + words + b"\0\0"
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


def test_smb_samba_signing_dialects_smbv1() -> None:
    blob = b"\x60\x10" + smbmod.SAMBA_HINT
    answers: list[Any] = [_smb2_negotiate_response(0x0311, 0x01, blob)]
    for d in sorted(smbmod.DIALECTS):
        answers += [Reply(), _smb2_negotiate_response(d, 0x01)]
    answers += [Reply(), _smb1_negotiate_response(True)]
    s, _ = run("microsoft-ds", answers, port=445, intensity=5)
    assert (s["name"], s["product"]) == ("microsoft-ds", "Samba smbd")
    assert s["extra"]["signing"] == "enabled"
    assert s["extra"]["smbv1"] is True
    assert s["extra"]["dialects"] == ["NT LM 0.12", "2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]
    assert s["extra"]["max_dialect"] == "3.1.1"


def test_smb_ntlm_challenge_windows() -> None:
    def av(kind: int, text: str) -> bytes:
        raw = text.encode("utf-16-le")
        return struct.pack("<HH", kind, len(raw)) + raw
    info = av(2, "CORP") + av(1, "DC01") + av(4, "corp.example") + av(3, "dc01.corp.example") \
        + struct.pack("<HH", 0, 0)
    msg = b"NTLMSSP\x00" + struct.pack("<I", 2) + struct.pack("<HHI", 0, 0, 56) + \
        struct.pack("<I", 0x02000000 | 0x00800000) + bytes(16) + \
        struct.pack("<HHI", len(info), len(info), 56) + struct.pack("<BBH", 10, 0, 20348) + \
        bytes(4) + info
    parsed = smbmod.parse_ntlm_challenge(b"\xa1\x81junk" + msg)
    assert parsed == {"netbios_domain": "CORP", "netbios_computer": "DC01",
                      "dns_domain": "corp.example", "dns_computer": "dc01.corp.example",
                      "os_version": "10.0.20348"}
    assert smbmod.windows_name("10.0.20348") == "Windows 10/11/Server 2016+"


def test_postgresql_without_auth_checks_uses_an_unsupported_protocol() -> None:
    from portscope.services import postgresql as pg
    err = b"SFATAL\0C0A000\0Munsupported frontend protocol 9999.0: server supports 3.0 " \
        b"to 3.0\0Fpostmaster.c\0L2220\0RProcessStartupPacket\0\0"
    e = b"E" + struct.pack("!I", 4 + len(err)) + err
    s, made = run("postgresql", [b"N", Reply(), e], auth_checks=False)
    assert (s["name"], s["product"], s["version"]) == ("postgresql", "PostgreSQL DB", "14 - 17")
    assert sent(made)[1] == pg.UNSUPPORTED_STARTUP
    assert "auth_required" not in s["extra"]


def test_redis_protected_mode() -> None:
    s, _ = run("redis", [b"-DENIED Redis is running in protected mode because protected "
                         b"mode is enabled\r\n"])
    assert s["extra"]["auth_required"] is True and s["extrainfo"] == "protected mode"


# --- identification --------------------------------------------------------------------


@pytest.mark.parametrize(("data", "protocol"), [
    (b"SSH-2.0-OpenSSH_9.2p1\r\n", "ssh"),
    (b"220 mail ESMTP Postfix\r\n", "smtp"),
    (b"220 (vsFTPd 3.0.3)\r\n", "ftp"),
    (b"+OK Dovecot ready.\r\n", "pop3"),
    (b"* OK IMAP4rev1 ready\r\n", "imap"),
    (b"RFB 003.008\n", "vnc"),
    (bytes([255, 253, 24]), "telnet"),
    (b"HTTP/1.1 400 Bad Request\r\n", "http"),
    (b"-NOAUTH Authentication required.\r\n", "redis"),
    (b"\x16\x03\x03\x00\x2a\x02", identify.TLS),
])
def test_classify_first_bytes(data: bytes, protocol: str) -> None:
    assert identify.classify(data)[0][1] == protocol


def test_bare_220_follows_the_port_hint() -> None:
    assert identify.classify(b"220 Welcome\r\n", "ftp")[0][1] == "ftp"
    assert identify.classify(b"220 Welcome\r\n", "smtp")[0][1] == "smtp"


def test_plans() -> None:
    https = identify.tcp_plan("https", 443, 7)
    assert https.tls_first and https.hinted == "http" and https.probes[0] == identify.TLS
    redis = identify.tcp_plan("redis", 6379, 7)
    assert redis.hinted == "redis" and redis.probes[0] == "redis"
    light = identify.tcp_plan(None, 40000, 2)
    assert light.probes == ("http", identify.TLS, "generic", "redis")
    assert "mongodb" in identify.tcp_plan(None, 40000, 9).probes
    assert identify.udp_plan("snmp", 161, 7).udp[0] == "snmp"
    assert identify.udp_plan(None, 40000, 0).udp == ()


def test_every_protocol_module_is_registered_once() -> None:
    names = [p.name for p in PROTOCOLS.values()]
    assert len(names) == len(set(names))
    assert {"ssh", "ftp", "smtp", "pop3", "imap", "http", "domain", "snmp", "netbios-ns",
            "microsoft-ds", "ms-wbt-server", "telnet", "mysql", "postgresql", "redis",
            "mongodb", "memcache", "ntp", "ldap", "vnc", "X11"} <= set(names)


def test_starttls_result_failure_ends_quietly() -> None:
    s, _ = run("pop3", [b"+OK\r\nSTLS\r\n.\r\n", b"+OK go\r\n",
                        TLSResult(False, error="handshake failed")], first=b"+OK ready\r\n")
    assert s["name"] == "pop3" and s["extra"]["starttls"] is True
