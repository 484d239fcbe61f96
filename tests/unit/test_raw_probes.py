"""Pure parts of the raw scans: nmap's state table, the rate controller, the BPF program,
UDP payloads, the scan state file."""

from __future__ import annotations

import json

import pytest

from portscope.engine.rawsock import reply_filter
from portscope.engine.resume import FORMAT, filter_decided, parse_state
from portscope.engine.timing import RateController, template
from portscope.errors import DataError
from portscope.model import PortState
from portscope.packets.fast import K_ICMP_ERROR, K_TCP, K_UDP, Reply
from portscope.probes import get
from portscope.probes.udp_payloads import PAYLOADS, parse_nmap_payloads
from portscope.targets.permutation import Probe

T4 = bytes([198, 18, 0, 2])
R4 = bytes([198, 18, 0, 1])


def tcp(flags: int, window: int = 0) -> Reply:
    return Reply(K_TCP, T4, 6, 80, 40000, 0, 1, flags, window, 0, 0, T4, 64, b"")


def icmp(typ: int, code: int, responder: bytes = T4, proto: int = 6) -> Reply:
    return Reply(K_ICMP_ERROR, T4, proto, 80, 40000, 0, 0, 0, 0, typ, code, responder, 64, b"")


def verdict(flag: str, rep: Reply) -> tuple[str, str] | None:
    raw = get(flag).raw
    assert raw is not None
    v = raw.classify(rep, rep.responder == rep.target)
    return None if v is None else (v[0].value, str(v[1]))


@pytest.mark.parametrize(("flag", "rep", "want"), [
    ("S", tcp(0x12), ("open", "syn-ack")),
    ("S", tcp(0x02), ("open", "split-handshake-syn")),
    ("S", tcp(0x14), ("closed", "reset")),
    ("S", icmp(3, 13), ("filtered", "admin-prohibited")),
    ("S", icmp(3, 3), ("filtered", "port-unreach")),
    ("S", icmp(11, 0), ("filtered", "time-exceeded")),
    ("S", icmp(3, 4), None),  # fragmentation needed: nmap ignores it
    ("F", tcp(0x14), ("closed", "reset")),
    ("N", tcp(0x04), ("closed", "reset")),
    ("X", icmp(3, 1), ("filtered", "host-unreach")),
    ("A", tcp(0x04), ("unfiltered", "reset")),
    ("A", icmp(3, 10), ("filtered", "host-prohibited")),
    ("W", tcp(0x04, window=512), ("open", "reset")),
    ("W", tcp(0x04, window=0), ("closed", "reset")),
    ("U", Reply(K_UDP, T4, 17, 53, 40000, 0, 0, 0, 0, 0, 0, T4, 64, b"x"), ("open",
                                                                        "udp-response")),
    ("U", icmp(3, 3, proto=17), ("closed", "port-unreach")),
    ("U", icmp(3, 3, responder=R4, proto=17), ("filtered", "port-unreach")),
    ("U", icmp(3, 13, proto=17), ("filtered", "admin-prohibited")),
])
def test_state_table(flag: str, rep: Reply, want: tuple[str, str] | None) -> None:
    assert verdict(flag, rep) == want


def test_icmpv6_codes() -> None:
    t6 = bytes(15) + b"\x02"
    rep = Reply(K_ICMP_ERROR, t6, 17, 161, 40000, 0, 0, 0, 0, 1, 4, t6, 64, b"")
    assert verdict("U", rep) == ("closed", "port-unreach")
    rep = rep._replace(icmp_code=1)
    assert verdict("U", rep) == ("filtered", "admin-prohibited")
    assert verdict("S", rep._replace(proto=6)) == ("filtered", "admin-prohibited")


def test_no_response_states() -> None:
    assert get("S").no_response is PortState.FILTERED
    assert get("F").no_response is PortState.OPEN_FILTERED
    assert get("A").no_response is PortState.FILTERED
    assert get("U").no_response is PortState.OPEN_FILTERED
    assert get("S").fallback == "T" and get("S").needs_root


def test_rate_controller_ignores_random_loss_but_backs_off_on_congestion() -> None:
    rc = RateController(template(4), 0.0, 4)
    start = rc.rate
    now = 0.0
    for _ in range(5):  # 2% random loss: keeps growing
        now += 0.11
        rc.sent = int(rc.rate * 0.11)
        rc.answers, rc.losses = 1000, 20
        rc.tick(now)
    assert rc.rate > start * 8 and rc.congestions == 0
    high = rc.rate
    now += 0.11
    rc.sent, rc.answers, rc.losses = int(rc.rate * 0.11), 1000, 400  # 40%: congestion
    rc.tick(now)
    assert rc.rate == pytest.approx(high * 0.7) and rc.congestions == 1
    now += 0.11
    rc.sent = int(rc.rate * 0.11)
    rc.on_local_drop(3)  # our receive buffer overflowed
    rc.tick(now)
    assert rc.congestions == 2 and rc.rate == pytest.approx(high * 0.49)


def test_rate_controller_respects_bounds() -> None:
    t = template(4).with_overrides(max_rate=7000, min_rate=6000)
    rc = RateController(t, 0.0, 4)
    assert rc.rate == 6000
    for i in range(1, 10):
        rc.sent = 10_000
        rc.tick(i * 0.2)
    assert rc.rate == 7000
    for i in range(10, 20):
        rc.sent = 10_000
        rc.on_local_drop()
        rc.tick(i * 0.2)
    assert rc.rate == 6000


def test_bpf_program_jumps_stay_inside() -> None:
    prog = reply_filter(40000, 40008)
    assert prog[-1] == (0x06, 0, 0, 0) and prog[-2][0] == 0x06
    for i, (code, jt, jf, _k) in enumerate(prog):
        if code & 0x07 == 0x05:  # jumps
            assert i + 1 + jt < len(prog) and i + 1 + jf < len(prog)


def test_payloads_are_nonempty_and_nmap_file_parser() -> None:
    for port in (53, 123, 161, 137, 1900, 5353, 500):
        assert PAYLOADS[port]
    assert PAYLOADS[123][0] == 0xE3 and len(PAYLOADS[123]) == 48
    text = ('# comment\nudp 7 "\\x0D\\x0A"\nudp 53,69 "\\x00\\x01"\n  "ab"\n'
            'udp 9-10 "x" source 53\nudp garbage\n')
    table = parse_nmap_payloads(text)
    assert table[7] == b"\r\n" and table[53] == b"\x00\x01ab" and table[69] == b"\x00\x01ab"
    assert table[9] == table[10] == b"x"


def test_state_file_round_trip_and_filter() -> None:
    head = json.dumps({"format": FORMAT, "seed": 42, "shard": [0, 1]})
    line = json.dumps({"t": "S", "a": "198.18.0.2", "r": {"port": 22, "protocol": "tcp",
                                                        "state": "open", "reason": "syn-ack"}})
    state = parse_state("\n".join([head, line, '{"t": "S", "a"']))  # last line cut short
    assert state.seed == 42 and state.decided["S"] == {("198.18.0.2", "tcp", 22)}
    probes = [Probe(0, "198.18.0.2", "tcp", 22), Probe(1, "198.18.0.2", "tcp", 23)]
    assert [p.port for p in filter_decided(iter(probes), state.decided["S"])] == [23]
    with pytest.raises(DataError):
        parse_state("not json")
    with pytest.raises(DataError):
        parse_state(head + "\n{bad}\n" + line)


def test_rtt_estimator_keeps_the_smallest_sample() -> None:
    from portscope.engine.timing import RttEstimator

    est = RttEstimator(template(4))
    assert est.minimum == float("inf")
    for sample in (0.050, 0.002, 0.030, -1.0):
        est.update(sample)
    assert est.minimum == 0.0 and est.samples == 4  # (negative clock skew counts as 0)
    assert 0.1 <= est.timeout() <= 1.25  # within -T4 bounds


def test_slow_start_decides_per_round_trip_on_a_fast_path() -> None:
    rc = RateController(template(4), 0.0, 4)
    start = rc.rate
    rc.sent, rc.answers = int(start * 0.006), 30
    assert not rc.tick(0.006)  # no path RTT known: the 25 ms interval
    rc.path_rtt = 0.0002  # a LAN: decide every 5 ms (two round trips, 5 ms at least)
    assert rc.tick(0.006) and rc.rate == 2 * start
    rc.sent, rc.answers = int(rc.rate * 0.006), 10
    assert not rc.tick(0.012)  # too few answers to judge loss yet: wait for the interval
    rc.path_rtt = 0.2  # a long path: never slower than the 25 ms interval
    rc.sent, rc.answers = int(rc.rate * 0.03), 30
    assert rc.tick(0.031) and rc.rate == 4 * start
