"""Hostile bytes never break a dialog or a parser: whatever a server sends is data."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portscope.services import PROTOCOLS, ber, bson, identify, tls
from portscope.services import http as httpmod
from portscope.services import ldap as ldapmod
from portscope.services import postgresql as pg
from portscope.services import smb as smbmod
from portscope.services import snmp as snmpmod
from portscope.services import telnet as telnetmod
from portscope.services.base import Context, Facts, Reply, TLSResult, run_scripted

answers = st.lists(st.one_of(st.binary(max_size=400),
                             st.builds(Reply, st.binary(max_size=200), st.booleans()),
                             st.just(TLSResult(True, {})), st.just(TLSResult(False))),
                   max_size=12)

SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(first=st.binary(max_size=300), replies=answers)
def test_every_tcp_dialog_survives_garbage(first: bytes, replies: list[object]) -> None:
    for proto in PROTOCOLS.values():
        if proto.dialog is None:
            continue
        facts = Facts()
        run_scripted(proto.dialog(Context("198.18.0.2", 1, first=first), facts), replies)
        svc = facts.to_service()
        assert svc.banner is None or len(svc.banner) <= 2048
        assert 0 <= svc.confidence <= 10


@SETTINGS
@given(replies=answers)
def test_every_udp_dialog_survives_garbage(replies: list[object]) -> None:
    for proto in PROTOCOLS.values():
        if proto.udp is None:
            continue
        run_scripted(proto.udp(Context("198.18.0.2", 1, transport="udp"), Facts()), replies)


@SETTINGS
@given(data=st.binary(max_size=600))
def test_parsers_never_raise(data: bytes) -> None:
    identify.classify(data)
    tls.HelloParser().parse(data)
    tls.hello_complete(data)
    httpmod.parse_response(data)
    httpmod.response_complete(data)
    snmpmod.parse_response(data)
    snmpmod.parse_v3_report(data)
    ldapmod.parse_messages(data)
    ldapmod.done_complete(data)
    pg.parse_backend(data)
    smbmod.parse_smb2_negotiate(data)
    smbmod.parse_smb1_negotiate(data)
    smbmod.parse_ntlm_challenge(b"NTLMSSP\x00\x02\x00\x00\x00" + data)
    telnetmod.parse(data)
    ber.complete(data)
    try:
        ber.read(data)
    except ber.BERError:
        pass
    try:
        bson.loads(data)
    except bson.BSONError:
        pass


def _fixture_answers() -> list[tuple[str, str, bool, list[object]]]:
    import json
    from pathlib import Path

    def decode(item: dict[str, object] | None) -> object:
        if item is None:
            return Reply()
        if "tls" in item:
            return TLSResult(bool(item["ok"]), {})
        return Reply(bytes.fromhex(str(item["data"])), eof=bool(item["eof"]))

    out = []
    for path in sorted((Path(__file__).parent.parent / "data" / "services").glob("*.json")):
        fx = json.loads(path.read_text())
        out.append((fx["protocol"], fx["transport"], fx["tls"],
                    [decode(a) for a in fx["answers"]]))
    return out


FIXTURES = _fixture_answers()


@SETTINGS
@given(which=st.integers(0, max(0, len(FIXTURES) - 1)), index=st.integers(0, 20),
       cut=st.integers(0, 2000), flips=st.lists(st.tuples(st.integers(0, 4000),
                                                            st.integers(1, 255)), max_size=6))
def test_mutated_real_answers(which: int, index: int, cut: int,
                              flips: list[tuple[int, int]]) -> None:
    """Real daemons' answers, truncated and with flipped bytes: deep parser paths."""
    proto, transport, in_tls, replies = FIXTURES[which]
    replies = list(replies)
    i = index % max(1, len(replies))
    if replies and isinstance(replies[i], Reply):
        data = bytearray(replies[i].data[:cut])  # type: ignore[union-attr]
        for pos, x in flips:
            if data:
                data[pos % len(data)] ^= x
        replies[i] = Reply(bytes(data))
    p = PROTOCOLS[proto]
    factory = p.udp if transport == "udp" else p.dialog
    assert factory is not None
    run_scripted(factory(Context("198.18.0.2", 1, transport=transport, tls=in_tls), Facts()),
                 replies)
