"""OS fingerprinting: probes, signature extraction and scoring, on recorded replies of the
lab's Linux stack and on replies built the way other stacks answer."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from portscope.engine.osdetect import guess
from portscope.errors import DataError
from portscope.fingerprint import kb, probes, signature
from portscope.fingerprint.probes import ACK_VALUE, Probe, build_probes, match_tcp
from portscope.fingerprint.signature import Observation, extract
from portscope.packets import decode_icmp, decode_ip, decode_tcp
from portscope.packets import tcp as T
from portscope.packets.icmp import ICMP
from portscope.packets.ip import FLAG_DF, IPv4
from portscope.packets.tcp import TCP, TCPFlags

DATA = Path(__file__).parent.parent / "data" / "os"
SRC, DST = "198.18.0.1", "198.18.0.2"


def load(name: str) -> tuple[list[Probe], list[Observation]]:
    d = json.loads((DATA / f"{name}.json").read_text())
    ps = [Probe(p["name"], bytes.fromhex(p["packet"]), p["proto"], p["sport"], p["dport"],
                p["seq"], p["ident"]) for p in d["probes"]]
    return ps, [Observation.from_dict(o) for o in d["observations"]]


# --- probes ----------------------------------------------------------------------------


def test_probes_are_well_formed() -> None:
    ps = build_probes(SRC, DST, 22, 23, base_port=40000, seq=1000, ip_id=7, tsval=5,
                      icmp_ident=0x4242)
    assert [p.name for p in ps] == [*probes.TCP_PROBES, "IE", "U1"]
    for p in ps:
        pkt = decode_ip(p.packet)
        assert pkt is not None and pkt.checksum_ok and pkt.dst == DST and pkt.proto == p.proto
    s1 = decode_tcp(decode_ip(ps[0].packet).payload)  # type: ignore[union-attr]
    assert s1 is not None and s1.flags == TCPFlags.SYN
    assert T.format_options(s1.options) == "WANM5B4T10S"
    assert T.verify_tcp(decode_ip(ps[0].packet).payload, SRC, DST)  # type: ignore[union-attr]
    assert {p.sport for p in ps[:3]} == {40000} and ps[3].sport == 40001
    ie = decode_icmp(decode_ip(ps[-2].packet).payload)  # type: ignore[union-attr]
    assert ie is not None and (ie.type, ie.code, ie.ident) == (8, probes.ECHO_CODE, 0x4242)
    assert decode_ip(ps[-2].packet).header.flags & FLAG_DF  # type: ignore[union-attr]


def test_match_tcp_tells_shared_ports_apart_by_ack() -> None:
    ps = build_probes(SRC, DST, 22, 23, base_port=40000, seq=1000, ip_id=7, tsval=5,
                      icmp_ident=1)
    s2 = ps[1]
    assert match_tcp(ps, 22, 40000, s2.seq + 1) is s2
    assert match_tcp(ps, 22, 40000, 12345) is None
    assert match_tcp(ps, 23, 40004, 0) is ps[6]  # S_CLOSED: only one probe on that pair


# --- helpers -----------------------------------------------------------------------------


def test_initial_ttl_and_ids() -> None:
    assert [signature.initial_ttl(t) for t in (1, 50, 64, 65, 120, 128, 200, 255)] == \
        [32, 64, 64, 128, 128, 128, 255, 255]
    assert signature.classify_ids([0, 0, 0]) == "zero"
    assert signature.classify_ids([7, 7]) == "constant"
    assert signature.classify_ids([65530, 65535, 4, 10]) == "incremental"
    assert signature.classify_ids([100, 40000, 9]) == "random"
    assert signature.classify_ids([5]) is None
    assert signature.ops_order("M5B4ST11NW7") == "MSTNW"
    assert signature.nearest_rate(990) == 1000 and signature.nearest_rate(5000) == "other"
    assert signature.ts_rate([(0.0, 100), (0.1, 200), (0.2, 300)]) == pytest.approx(1000)


# --- the recorded Linux stack ------------------------------------------------------------


def test_recorded_linux_signature() -> None:
    ps, obs = load("linux-lab")
    sig = extract(obs, ps)
    assert sig["ttl"] == 64 and sig["syn_df"] is True
    assert sig["syn_order"] == "MSTNW" and sig["syn_mss"] == 1460
    assert sig["ts_hz"] == 1000 and sig["ts_offset"] == "per-connection"
    assert sig["ipid_tcp"] == "zero" and sig["ecn"] == "ece"
    assert sig["closed_ack"] == "seq+1" and sig["closed_window"] == 0
    assert sig["echo_code"] == "same" and sig["echo_df"] is False
    assert sig["unreach_quote"] == 308
    assert len(sig["answered"]) == 11


def test_recorded_linux_is_named_linux() -> None:
    ps, obs = load("linux-lab")
    g = guess(obs, ps, closed_known=True)
    assert g is not None and g.family == "Linux" and g.name == "Linux 4.10 - 6.x"
    assert g.accuracy >= 90
    assert g.cpe == ("cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*",)
    second = g.evidence["guesses"][1]
    assert second["accuracy"] < g.accuracy
    assert all(x["name"] for x in g.evidence["guesses"])


def test_partial_replies_lower_the_accuracy() -> None:
    ps, obs = load("linux-lab")
    only_echo = [o if o.probe == "IE" else Observation(o.probe, o.sent) for o in obs]
    g = guess(only_echo, ps, closed_known=True)
    assert g is not None and g.accuracy < 90  # one ICMP reply is not a certain guess
    silent = [Observation(o.probe, o.sent) for o in obs]
    assert guess(silent, ps, closed_known=True) is None


def test_guessed_closed_port_answers_are_not_used() -> None:
    ps, obs = load("linux-lab")
    g = guess(obs, ps, closed_known=False)
    assert g is not None and "closed_window" not in g.evidence["signature"]


def test_garbage_replies_are_data() -> None:
    ps, obs = load("linux-lab")
    junk = [Observation(o.probe, o.sent, o.sent + 0.01, b"\x45\x00garbage" + bytes(30))
            for o in obs]
    sig = extract(junk, ps)
    assert sig["answered"] == []
    truncated = [Observation(o.probe, o.sent, o.received,
                             o.reply[: len(o.reply) // 2] if o.reply else None) for o in obs]
    extract(truncated, ps)


# --- other stacks, built from their documented behaviour --------------------------------


def _stack_replies(ps: list[Probe], *, ttl: int, df: bool, window: int,
                   options: tuple[T.TCPOption, ...], ipid: str, ecn: bool,
                   echo_code_same: bool, quote: int, ts_step: int = 100) -> list[Observation]:
    """What a stack with these properties answers to our probes (a fake, hop count 2)."""
    out: list[Observation] = []
    ident = 1000
    for i, p in enumerate(ps):
        ident = 0 if ipid == "zero" else ident + 1
        sent = i * 0.1
        header = IPv4(src=DST, dst=SRC, proto=p.proto, ttl=ttl - 2, ident=ident,
                      flags=FLAG_DF if df else 0)
        if p.proto == 6:
            if (p.name.startswith("S") and p.name != "S_CLOSED") or p.name == "ECN":
                opts = tuple((k, struct.pack("!II", 5000 + i * ts_step, 77))
                             if k == T.OPT_TIMESTAMP else (k, d) for k, d in options)
                flags = TCPFlags.SYN | TCPFlags.ACK | (TCPFlags.ECE if p.name == "ECN"
                                                       and ecn else 0)
                seg = TCP(p.dport, p.sport, seq=99, ack=p.seq + 1, flags=flags,
                          window=window, options=opts)
            elif p.name == "S_CLOSED":
                seg = TCP(p.dport, p.sport, seq=0, ack=p.seq + 1,
                          flags=TCPFlags.RST | TCPFlags.ACK)
            else:
                seg = TCP(p.dport, p.sport, seq=ACK_VALUE, flags=TCPFlags.RST)
            data = header.encode(seg.encode(DST, SRC))
        elif p.proto == 1:
            req = decode_icmp(decode_ip(p.packet).payload)  # type: ignore[union-attr]
            assert req is not None
            code = req.code if echo_code_same else 0
            data = header.encode(ICMP(0, code, req.rest, req.body).encode())
        else:
            quoted = p.packet[: 20 + quote]
            data = IPv4(src=DST, dst=SRC, proto=1, ttl=ttl - 2, ident=ident).encode(
                ICMP(3, 3, bytes(4), quoted).encode())
        out.append(Observation(p.name, sent, sent + 0.001, data))
    return out


def _probes() -> list[Probe]:
    return build_probes(SRC, DST, 3389, 23, base_port=40000, seq=1000, ip_id=7, tsval=5,
                        icmp_ident=9)


WINDOWS_OPTS = (T.mss(1460), T.nop(), T.wscale(8), T.sack_permitted(), T.timestamp(1, 1))
FREEBSD_OPTS = (T.mss(1460), T.nop(), T.wscale(6), T.sack_permitted(), T.timestamp(1, 1))


def test_a_windows_like_stack_is_named_windows() -> None:
    ps = _probes()
    obs = _stack_replies(ps, ttl=128, df=True, window=65535, options=WINDOWS_OPTS,
                         ipid="incremental", ecn=False, echo_code_same=False, quote=308)
    g = guess(obs, ps, closed_known=True)
    assert g is not None and g.family == "Windows", g.evidence["guesses"]
    assert g.accuracy >= 90
    assert g.evidence["signature"]["hops"] == 2
    linux = next(x for x in g.evidence["guesses"] if x["name"].startswith("Linux"))
    assert linux["accuracy"] < 60


def test_a_freebsd_like_stack_is_named_freebsd() -> None:
    ps = _probes()
    obs = _stack_replies(ps, ttl=64, df=True, window=65535, options=FREEBSD_OPTS,
                         ipid="zero", ecn=True, echo_code_same=True, quote=8, ts_step=100)
    g = guess(obs, ps, closed_known=True)
    assert g is not None and g.family == "FreeBSD", g.evidence["guesses"]


def test_a_router_with_ttl_255_is_not_linux() -> None:
    ps = _probes()
    obs = _stack_replies(ps, ttl=255, df=False, window=4128, options=(T.mss(536),),
                         ipid="incremental", ecn=False, echo_code_same=False, quote=8)
    g = guess(obs, ps, closed_known=True)
    assert g is not None and g.family in ("IOS", "embedded")


# --- the knowledge base ------------------------------------------------------------------


def test_builtin_knowledge_base_loads() -> None:
    entries = kb.load()
    assert len(entries) >= 10
    assert len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert e.expect and e.family


def test_kb_rejects_unknown_features_and_bad_toml() -> None:
    with pytest.raises(DataError, match="unknown features"):
        kb.parse('[[os]]\nname = "x"\nexpect = { colour = "blue" }\n')
    with pytest.raises(DataError):
        kb.parse("[[os\n")
    with pytest.raises(DataError, match="needs name"):
        kb.parse('[[os]]\nfamily = "x"\n')


@pytest.mark.parametrize(("expected", "got", "ok"), [
    (64, 64, True), (64, 128, False), ([1, 2], 2, True), ({"min": 5, "max": 9}, 7, True),
    ({"min": 5}, 3, False), ({"max": 5}, "x", False), (True, 1, False), (False, False, True),
])
def test_value_matches(expected: Any, got: Any, ok: bool) -> None:
    assert kb.value_matches(expected, got) is ok
