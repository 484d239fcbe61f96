"""-sV and audit against real remote-desktop daemons from Debian's packages: TigerVNC's
Xvnc (RFB with security type None or VncAuth, its X server on TCP open to anyone or
refusing clients) and xrdp (TLS or standard RDP security), each in its own lab host with a
throw-away configuration, compared with nmap -sV on the same ports.

Never a VNC or X server outside a lab namespace: :func:`portscope.testing.daemons.start_xvnc`
runs Xvnc inside the host's network namespace with a private /tmp."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import audit, by_check, nmap_line, nmap_sv, ours_line, sv_scan

from portscope.testing import daemons as D
from portscope.testing.lab import Lab, LabHost

# --- TigerVNC Xvnc: no authentication, X11 open to anyone ---------------------------------


@pytest.fixture(scope="module")
def xvnc_open(module_lab: Lab) -> Iterator[D.Daemon]:
    """Xvnc :1 with ``-SecurityTypes None`` on 5901, and its X server on TCP 6001 with
    access control off (``-listen tcp -ac``); RFB also on the unusual port 15901."""
    host = module_lab.add_host()
    try:
        d = D.start_xvnc(host, x11_tcp=True, access_control=False)
    except D.DaemonError as exc:
        pytest.fail(f"xvnc: {exc}")
    D.redirect(host, 15901, 5901)
    with d:
        yield d


def test_xvnc_sv_rfb_without_authentication(xvnc_open: D.Daemon, tmp_path: Path) -> None:
    ports = sv_scan(xvnc_open.host, "5901,15901,6001", tmp_path / "sv.json")
    for port in (5901, 15901):  # the RFB greeting, not the port number
        svc = ports[("tcp", port)]["service"]
        assert (svc["name"], svc["product"], svc["extrainfo"]) == \
            ("vnc", "VNC", "protocol 3.8"), port
        assert svc["method"] == "banner" and svc["banner"] == "RFB 003.008"
        assert svc["extra"]["security_types"] == ["None"]
        assert svc["extra"]["auth_required"] is False
    x11 = ports[("tcp", 6001)]["service"]
    # Xvnc's X server is xorg-server's code: vendor "The X.Org Foundation", its release
    # number (12101006 in Debian 12) is xorg-server 21.1.6
    assert (x11["name"], x11["product"]) == ("X11", "X.Org")
    assert x11["version"] and x11["version"].startswith("21.1.")
    assert x11["extrainfo"] == "open; Xvnc"
    assert x11["extra"]["auth_required"] is False and x11["extra"]["vnc_extension"] is True
    assert x11["cpe"] == [f"cpe:2.3:a:x.org:xorg-server:{x11['version']}:*:*:*:*:*:*:*"]
    assert x11["banner"].endswith("The X.Org Foundation")


def test_xvnc_audit_open_vnc_and_x11(xvnc_open: D.Daemon, tmp_path: Path) -> None:
    code, findings = audit(xvnc_open.host, "5901,6001", tmp_path / "audit.json",
                           "--fail-on", "critical")
    assert code == 1
    checks = by_check(findings)
    vnc = checks[("access.no-auth", 5901)]
    assert vnc["severity"] == "critical" and "security type None offered" in vnc["evidence"]
    x11 = checks[("access.no-auth", 6001)]
    assert x11["severity"] == "critical" and "auth_required = false" in x11["evidence"]
    assert checks[("exposure.service", 5901)]["severity"] == "high"
    assert checks[("exposure.service", 6001)]["severity"] == "high"
    # RFB without TLS: the session (and a password, were there one) in clear text
    assert checks[("cleartext.login", 5901)]["severity"] == "medium"


@pytest.mark.slow
def test_xvnc_side_by_side_with_nmap(xvnc_open: D.Daemon, nmap_bin: str,
                                     tmp_path: Path) -> None:
    ours = sv_scan(xvnc_open.host, "5901,6001", tmp_path / "sv.json")
    theirs = nmap_sv(nmap_bin, xvnc_open.host, "5901,6001")
    for key in (("tcp", 5901), ("tcp", 6001)):
        print(f"\nTigerVNC {xvnc_open.version} {key[1]}/{key[0]}: portscope "
              f"{ours_line(ours[key]['service'])}; nmap {nmap_line(theirs.get(key))}")
    assert ours[("tcp", 5901)]["service"]["product"] == "VNC"
    assert ours[("tcp", 6001)]["service"]["product"] == "X.Org"
    # nmap 7.93: "VNC (protocol 3.8)" and "X.Org (open)" (no xorg-server version); neither
    # tool can tell TigerVNC from the RFB greeting alone


# --- TigerVNC Xvnc: VncAuth, X11 refusing clients ------------------------------------------


def test_xvnc_with_password_and_x11_access_control(own_lab_host: LabHost,
                                                   tmp_path: Path) -> None:
    """``-SecurityTypes VncAuth -PasswordFile``: only VNC Authentication offered (no
    no-auth finding, still cleartext); the X server with access control on refuses a client
    without a cookie, and names no vendor."""
    with D.start_xvnc(own_lab_host, rfb_port=5999, password="lab-secret", x11_tcp=True):
        ports = sv_scan(own_lab_host, "5999,6001", tmp_path / "sv.json")
        _, findings = audit(own_lab_host, "5999,6001", tmp_path / "audit.json")
    vnc = ports[("tcp", 5999)]["service"]
    assert (vnc["name"], vnc["product"], vnc["extrainfo"]) == ("vnc", "VNC", "protocol 3.8")
    assert vnc["extra"]["security_types"] == ["VNC Authentication"]
    assert vnc["extra"]["auth_required"] is True
    x11 = ports[("tcp", 6001)]["service"]
    assert (x11["name"], x11["product"], x11["extrainfo"]) == \
        ("X11", "X11 server", "access denied")
    assert x11["extra"] == {"auth_required": True, "error":
                            "Authorization required, but no authorization protocol specified"}
    checks = by_check(findings)
    assert ("access.no-auth", 5999) not in checks and ("access.no-auth", 6001) not in checks
    assert checks[("cleartext.login", 5999)]["severity"] == "medium"
    assert checks[("exposure.service", 6001)]["severity"] == "high"


# --- xrdp --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xrdp(module_lab: Lab) -> Iterator[D.Daemon]:
    """xrdp as shipped (``security_layer=negotiate``): TLS or standard RDP security; also
    on the unusual port 13389."""
    host = module_lab.add_host()
    try:
        d = D.start_xrdp(host)
    except D.DaemonError as exc:
        pytest.fail(f"xrdp: {exc}")
    D.redirect(host, 13389, 3389)
    with d:
        yield d


XRDP_CPE = ["cpe:2.3:a:neutrinolabs:xrdp:*:*:*:*:*:*:*:*"]


def test_xrdp_sv_negotiation_facts(xrdp: D.Daemon, tmp_path: Path) -> None:
    ports = sv_scan(xrdp.host, "3389,13389", tmp_path / "sv.json")
    cert = xrdp.extra["cert"]
    for port in (3389, 13389):
        svc = ports[("tcp", port)]["service"]
        # xrdp, not "Microsoft Terminal Services": its answer to a bad MCS PDU tells
        assert (svc["name"], svc["product"], svc["version"]) == \
            ("ms-wbt-server", "xrdp", None), port
        assert svc["cpe"] == XRDP_CPE and "ostype" not in svc["extra"]
        # standard RDP security and TLS; no CredSSP (xrdp has no NLA)
        assert svc["extra"]["protocols"] == ["rdp", "ssl"]
        assert svc["extra"]["nla_required"] is False and "failures" not in svc["extra"]
        assert svc["tls"]["sha256"] == cert.sha256 and svc["tls"]["starttls"] is True


def test_xrdp_audit(xrdp: D.Daemon, tmp_path: Path) -> None:
    code, findings = audit(xrdp.host, "3389", tmp_path / "audit.json", "--fail-on", "high")
    assert code == 1
    checks = by_check(findings)
    exposure = checks[("exposure.service", 3389)]
    assert exposure["severity"] == "high" and "xrdp" in exposure["evidence"]
    assert ("tls.self-signed", 3389) in checks  # the lab certificate
    assert ("access.no-auth", 3389) not in checks
    # xrdp as shipped accepts standard RDP security and never demands NLA
    assert checks[("rdp.standard-security", 3389)]["severity"] == "medium"
    assert checks[("rdp.nla-not-required", 3389)]["severity"] == "medium"


@pytest.mark.parametrize(("layer", "protocols", "failures", "tls"), [
    ("tls", ["ssl"], {"rdp": "SSL_REQUIRED_BY_SERVER"}, True),
    # standard RDP security only: xrdp answers a TLS request with RDP (no failure code)
    ("rdp", ["rdp"], None, False),
])
def test_xrdp_security_layers(own_lab_host: LabHost, tmp_path: Path, layer: str,
                              protocols: list[str], failures: dict[str, str] | None,
                              tls: bool) -> None:
    with D.start_xrdp(own_lab_host, security_layer=layer):
        svc = sv_scan(own_lab_host, "3389", tmp_path / "sv.json")[("tcp", 3389)]["service"]
    assert (svc["name"], svc["product"]) == ("ms-wbt-server", "xrdp")
    assert svc["extra"]["protocols"] == protocols
    assert svc["extra"].get("failures") == failures
    assert svc["extra"]["nla_required"] is False
    assert (svc["tls"] is not None) is tls


@pytest.mark.slow
def test_xrdp_side_by_side_with_nmap(xrdp: D.Daemon, nmap_bin: str, tmp_path: Path) -> None:
    ours = sv_scan(xrdp.host, "3389", tmp_path / "sv.json")[("tcp", 3389)]["service"]
    theirs = nmap_sv(nmap_bin, xrdp.host, "3389").get(("tcp", 3389))
    print(f"\nxrdp {xrdp.version}: portscope {ours_line(ours)} {ours['extra']['protocols']}; "
          f"nmap {nmap_line(theirs)}")
    assert ours["product"] == "xrdp"
    # nmap 7.93 also says "xrdp" (after ~12 s of probes), without the security protocols


def test_xvnc_blacklisted_scanner_is_reported_locked_out(own_lab_host: LabHost,
                                                         tmp_path: Path) -> None:
    """TigerVNC's blacklist (``-BlacklistThreshold 2`` here; 5 by default): after a few
    connections that ended before authentication it greets the address with "RFB 003.003"
    and "Too many security failures". That is a lockout, not an RFB 3.3 server."""
    with D.start_xvnc(own_lab_host, blacklist_threshold=2) as d:
        for _ in range(3):
            with socket.create_connection((own_lab_host.addr4, 5901), timeout=5) as s:
                s.recv(12)
        svc = sv_scan(own_lab_host, "5901", tmp_path / "sv.json")[("tcp", 5901)]["service"]
        log = d.log()
    assert (svc["name"], svc["product"]) == ("vnc", "VNC"), log
    assert svc["extrainfo"] == "protocol 3.3; locked out"
    assert svc["extra"]["error"] == "Too many security failures"
    assert svc["extra"]["locked_out"] is True and "security_types" not in svc["extra"]
