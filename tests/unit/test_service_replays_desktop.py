"""What real TigerVNC Xvnc and xrdp answered (recorded by
tests/data/services/record_desktop.py), replayed through the dialogs and the checks: the
fixes these daemons showed were needed, without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from portscope.checks import run_checks
from portscope.checks.config import AuditConfig
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun, Service
from portscope.services import PROTOCOLS, rdp, x11
from portscope.services.base import Context, Facts, Reply, ScriptItem, TLSResult, run_scripted

DATA = Path(__file__).parent.parent / "data" / "services"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def decode(a: Any) -> ScriptItem:
    if a is None:
        return Reply()
    if "tls" in a:
        return TLSResult(bool(a["ok"]), a["tls"], a["error"])
    return Reply(bytes.fromhex(a["data"]), eof=a["eof"], timed_out=a["timed_out"],
                 error=a["error"])


def replay(fx: dict[str, Any], answers: list[ScriptItem] | None = None) -> Service:
    proto = PROTOCOLS[fx["protocol"]]
    assert proto.dialog is not None
    ctx = Context("198.18.0.2", fx["port"], transport=fx["transport"], tls=fx["tls"],
                  nonce=fx["nonce"], intensity=fx["intensity"], now=NOW)
    facts = Facts()
    run_scripted(proto.dialog(ctx, facts),
                 answers if answers is not None else [decode(a) for a in fx["answers"]])
    return facts.to_service()


def findings(svc: Service, port: int) -> dict[str, Any]:
    p = PortResult(port, Protocol("tcp"), PortState.OPEN, "syn-ack", service=svc)
    run = ScanRun("t", NOW, NOW, hosts=(Host("198.18.0.2", HostStatus.UP, ports=(p,)),))
    return {f.check: f for f in run_checks(run, AuditConfig(), now=NOW).hosts[0].findings}


# --- xrdp: not Windows ------------------------------------------------------------------------

XRDP_CPE = ("cpe:2.3:a:neutrinolabs:xrdp:*:*:*:*:*:*:*:*",)


@pytest.mark.parametrize(("name", "protocols", "failures"), [
    ("xrdp", ["rdp", "ssl"], None),
    ("xrdp-tls", ["ssl"], {"rdp": "SSL_REQUIRED_BY_SERVER"}),
    ("xrdp-rdp", ["rdp"], None),
])
def test_xrdp_is_named_xrdp_not_microsoft(name: str, protocols: list[str],
                                          failures: dict[str, str] | None) -> None:
    svc = replay(fixture(name))
    assert (svc.name, svc.product, svc.cpe) == ("ms-wbt-server", "xrdp", XRDP_CPE)
    assert "ostype" not in svc.extra  # it was "Windows"
    assert svc.extra["protocols"] == protocols
    assert svc.extra.get("failures") == failures
    assert svc.extra["nla_required"] is False


def test_the_same_negotiation_without_the_ultimatum_is_windows() -> None:
    """xrdp's negotiation answers are Windows' (flags 0x01, source reference 0x1234): only
    the Disconnect-Provider-Ultimatum tells. A server that closes instead is Windows."""
    answers = [decode(a) for a in fixture("xrdp")["answers"]]
    ultimatum = [i for i, a in enumerate(answers)
                 if isinstance(a, Reply) and rdp.is_xrdp(a.data)]
    assert len(ultimatum) == 1
    answers[ultimatum[0]] = Reply(b"", eof=True)
    svc = replay(fixture("xrdp"), answers)
    assert svc.product == "Microsoft Terminal Services"
    assert svc.extra["ostype"] == "Windows"


def test_xrdp_audit_exposure_names_xrdp() -> None:
    got = findings(replay(fixture("xrdp")), 3389)
    assert got["exposure.service"].severity.value == "high"
    assert "xrdp" in got["exposure.service"].evidence
    assert "access.no-auth" not in got


def test_bad_mcs_pdu_and_ultimatum() -> None:
    assert bytes.fromhex("0300000802f08000") == rdp.BAD_MCS
    assert rdp.is_xrdp(bytes.fromhex("0300000902f0802180"))
    assert not rdp.is_xrdp(b"") and not rdp.is_xrdp(bytes.fromhex("0300000902f0807f66"))


# --- X11: X.Org's release is the xorg-server version, Xvnc's extension ------------------------


def test_xvnc_x11_open_names_xorg_and_its_version() -> None:
    svc = replay(fixture("xvnc-x11-open"))
    assert (svc.name, svc.product, svc.version) == ("X11", "X.Org", "21.1.6")
    assert svc.extrainfo == "open; Xvnc"
    assert svc.cpe == ("cpe:2.3:a:x.org:xorg-server:21.1.6:*:*:*:*:*:*:*",)
    assert svc.extra == {"auth_required": False, "vendor": "The X.Org Foundation",
                         "release": 12101006, "vnc_extension": True}
    # the evidence is the setup's head up to the vendor, not kilobytes of formats
    assert svc.banner is not None and svc.banner.endswith("The X.Org Foundation")
    got = findings(svc, 6001)
    assert got["access.no-auth"].severity.value == "critical"


def test_xvnc_x11_refused() -> None:
    svc = replay(fixture("xvnc-x11-refused"))
    assert (svc.product, svc.version, svc.extrainfo) == ("X11 server", None, "access denied")
    assert svc.extra["error"] == "Authorization required, but no authorization protocol specified"
    assert "access.no-auth" not in findings(svc, 6001)


@pytest.mark.parametrize(("release", "version"), [
    (12101006, "21.1.6"), (12013000, "1.20.13"), (11906000, "1.19.6"), (12001004, "1.20.1.4"),
    (6700, None), (0, None),
])
def test_xorg_version(release: int, version: str | None) -> None:
    assert x11.xorg_version(release) == version


def test_query_extension_request() -> None:
    req = x11.query_extension(b"VNC-EXTENSION")
    assert req[0] == 98 and len(req) == 4 * int.from_bytes(req[2:4], "little") == 24
    assert req[8:21] == b"VNC-EXTENSION" and req[21:] == bytes(3)


# --- VNC: TigerVNC's lockout is not an RFB 3.3 server --------------------------------------


def test_tigervnc_lockout_is_reported_as_such() -> None:
    svc = replay(fixture("tigervnc-locked-out"))
    assert (svc.name, svc.product) == ("vnc", "VNC")
    assert svc.extrainfo == "protocol 3.3; locked out"
    assert svc.extra == {"protocol_version": "RFB 003.003", "locked_out": True,
                         "error": "Too many security failures"}
    # no security types known: neither "no authentication" nor cleartext login
    got = findings(svc, 5901)
    assert "access.no-auth" not in got and "cleartext.login" not in got


def test_lockout_split_across_reads() -> None:
    """The reason may arrive after the greeting's read: the dialog waits for it."""
    proto = PROTOCOLS["vnc"]
    facts = Facts()
    made = run_scripted(proto.dialog(Context("198.18.0.2", 5901, first=b"RFB 003.003\n\0\0\0\0"),
                                     facts),
                        [Reply(b"\0\0\0\x1aToo many security failures")])
    assert facts.extra["error"] == "Too many security failures"
    assert not any(getattr(r, "data", b"") for r in made)  # nothing sent to a lockout


@pytest.mark.parametrize(("name", "types", "no_auth"), [
    ("tigervnc-none", ["None"], True),
    ("tigervnc-vncauth", ["VNC Authentication"], False),
])
def test_tigervnc_security_types_and_audit(name: str, types: list[str], no_auth: bool) -> None:
    svc = replay(fixture(name))
    assert (svc.product, svc.extrainfo) == ("VNC", "protocol 3.8")
    assert svc.extra["security_types"] == types
    got = findings(svc, 5901)
    assert ("access.no-auth" in got) is no_auth
    assert got["cleartext.login"].severity.value == "medium"
