"""Timing templates, round-trip estimation and the congestion window (pure logic).

The numbers follow nmap's templates where nmap has them (RTT timeouts, retries,
scan delay); parallelism is portscope's own because its engines are cheaper per
probe. ``RttEstimator`` is RFC 6298's (srtt + 4 * rttvar), clamped to the
template's bounds. ``Window`` is a TCP-like congestion window over probes in
flight: slow start, additive increase, halve on evidence of loss (a retransmitted
probe that then got an answer), never below a floor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from portscope.errors import UsageError


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    initial_rtt_timeout: float  # seconds
    min_rtt_timeout: float
    max_rtt_timeout: float
    max_retries: int  # retransmissions after the first probe, at most
    scan_delay: float  # seconds between probes (serialises when > 0)
    max_parallel: int  # probes in flight at most
    initial_parallel: int
    host_timeout: float | None = None  # seconds; None = no limit
    max_rate: float | None = None  # probes per second
    min_rate: float | None = None

    def with_overrides(self, *, max_retries: int | None = None, max_rate: float | None = None,
                       min_rate: float | None = None, max_parallel: int | None = None,
                       scan_delay: float | None = None, host_timeout: float | None = None,
                       min_rtt_timeout: float | None = None, max_rtt_timeout: float | None = None,
                       initial_rtt_timeout: float | None = None) -> Timing:
        t = self
        if max_retries is not None:
            if max_retries < 0:
                raise UsageError("--max-retries must be >= 0")
            t = replace(t, max_retries=max_retries)
        if max_rate is not None:
            if max_rate <= 0:
                raise UsageError("--max-rate must be > 0")
            t = replace(t, max_rate=max_rate)
        if min_rate is not None:
            if min_rate <= 0:
                raise UsageError("--min-rate must be > 0")
            t = replace(t, min_rate=min_rate)
        if t.max_rate is not None and t.min_rate is not None and t.min_rate > t.max_rate:
            raise UsageError("--min-rate is larger than --max-rate")
        if max_parallel is not None:
            if max_parallel < 1:
                raise UsageError("--max-parallelism must be >= 1")
            t = replace(t, max_parallel=max_parallel,
                        initial_parallel=min(t.initial_parallel, max_parallel))
        if scan_delay is not None:
            if scan_delay < 0:
                raise UsageError("--scan-delay must be >= 0")
            t = replace(t, scan_delay=scan_delay)
        if host_timeout is not None:
            t = replace(t, host_timeout=host_timeout if host_timeout > 0 else None)
        for name, value in (("min-rtt-timeout", min_rtt_timeout),
                            ("max-rtt-timeout", max_rtt_timeout),
                            ("initial-rtt-timeout", initial_rtt_timeout)):
            if value is not None and value <= 0:
                raise UsageError(f"--{name} must be > 0")
        if min_rtt_timeout is not None:
            t = replace(t, min_rtt_timeout=min_rtt_timeout)
        if max_rtt_timeout is not None:
            t = replace(t, max_rtt_timeout=max_rtt_timeout)
        if initial_rtt_timeout is not None:
            t = replace(t, initial_rtt_timeout=initial_rtt_timeout)
        if t.min_rtt_timeout > t.max_rtt_timeout:
            raise UsageError("--min-rtt-timeout is larger than --max-rtt-timeout")
        return t


TEMPLATES: dict[int, Timing] = {
    0: Timing("paranoid", 300.0, 0.1, 300.0, 10, 300.0, 1, 1),
    1: Timing("sneaky", 15.0, 0.1, 15.0, 10, 15.0, 1, 1),
    2: Timing("polite", 1.0, 0.1, 10.0, 10, 0.4, 1, 1),
    3: Timing("normal", 1.0, 0.1, 10.0, 10, 0.0, 2048, 256),
    4: Timing("aggressive", 0.5, 0.1, 1.25, 6, 0.0, 4096, 512),
    5: Timing("insane", 0.25, 0.05, 0.3, 2, 0.0, 8192, 1024),
}


def template(level: int) -> Timing:
    if level not in TEMPLATES:
        raise UsageError(f"timing template must be -T0 .. -T5, not -T{level}")
    return TEMPLATES[level]


class RttEstimator:
    """RFC 6298 round-trip estimation with nmap's clamping."""

    __slots__ = ("_max", "_min", "initial", "minimum", "rttvar", "samples", "srtt")

    def __init__(self, timing: Timing) -> None:
        self.initial = timing.initial_rtt_timeout
        self._min = timing.min_rtt_timeout
        self._max = timing.max_rtt_timeout
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0
        self.minimum = float("inf")  # the smallest sample: the path's own delay

    def update(self, sample: float) -> None:
        sample = max(sample, 0.0)
        self.samples += 1
        if sample < self.minimum:
            self.minimum = sample
        if self.srtt is None:
            self.srtt = sample
            self.rttvar = sample / 2
        else:
            delta = sample - self.srtt
            self.srtt += delta / 8
            self.rttvar += (abs(delta) - self.rttvar) / 4

    def timeout(self) -> float:
        if self.srtt is None:
            return min(max(self.initial, self._min), self._max)
        return min(max(self.srtt + 4 * self.rttvar, self._min), self._max)


class Window:
    """Congestion window over probes in flight."""

    __slots__ = ("cwnd", "drops", "floor", "maximum", "ssthresh")

    def __init__(self, initial: int, maximum: int, floor: int = 1) -> None:
        self.maximum = max(1, maximum)
        self.floor = max(1, min(floor, self.maximum))
        self.cwnd = float(min(max(initial, self.floor), self.maximum))
        self.ssthresh = float(self.maximum)
        self.drops = 0

    @property
    def limit(self) -> int:
        return int(self.cwnd)

    def on_reply(self) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + 1, self.maximum)
        else:
            self.cwnd = min(self.cwnd + 1 / max(self.cwnd, 1.0), self.maximum)

    def on_drop(self) -> None:
        """A retransmitted probe was answered: the first try was lost."""
        self.drops += 1
        self.ssthresh = max(self.cwnd / 2, float(self.floor))
        self.cwnd = self.ssthresh


class TokenBucket:
    """Rate limiter in probes per second (``None`` = unlimited); time is passed in."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float | None, now: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, (rate or 0) / 50)
        self.tokens = self.burst
        self.stamp = now

    def available(self, now: float) -> float:
        if self.rate is None:
            return float("inf")
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self, n: float = 1.0) -> None:
        if self.rate is not None:
            self.tokens -= n

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available."""
        if self.rate is None:
            return 0.0
        have = self.available(now)
        return 0.0 if have >= 1 else (1 - have) / self.rate


# initial raw-probe rate per template (probes/s); slow start doubles it from there
_INITIAL_RATE = {0: 1.0, 1: 1.0, 2: 2.5, 3: 2000.0, 4: 5000.0, 5: 20000.0}
RAW_MAX_RATE = 1_000_000.0  # a ceiling that is never the limit in Python


class RateController:
    """Sending rate of the raw engines (pure: events and ``now`` in, a rate out).

    It tells *random* loss from *congestion* instead of treating every lost probe as
    congestion (nmap halves its window on each drop, so 1% random loss makes it crawl):

    * loss evidence is a retransmitted probe answered by the target itself (ICMP errors
      do not count: they are rate-limited); the controller keeps a baseline loss ratio;
    * an interval is *congested* when the receive socket overflowed or the local send
      queue was full (our own end is the bottleneck), or when its loss ratio clearly
      exceeds the baseline (more than max(10%, 3 x baseline + 3%)): then the rate is cut
      to 70%;
    * otherwise the rate grows: doubling per quarter interval until the first congestion,
      then by 10% per interval; growth stops while the sender could not even use the rate it
      had (the CPU is the limit, not the network).

    ``--min-rate`` and ``--max-rate`` bound it; ``--scan-delay`` fixes it.
    """

    __slots__ = (
        "answers",
        "baseline",
        "congestions",
        "fixed",
        "floor",
        "history",
        "interval",
        "level",
        "local_drops",
        "losses",
        "maximum",
        "path_rtt",
        "rate",
        "sent",
        "slow_start",
        "stamp",
    )

    def __init__(self, timing: Timing, now: float, level: int = 3) -> None:
        self.fixed = timing.scan_delay > 0
        start = 1.0 / timing.scan_delay if self.fixed else _INITIAL_RATE.get(level, 2000.0)
        self.floor = timing.min_rate or min(start, 100.0)
        self.maximum = timing.max_rate or RAW_MAX_RATE
        self.rate = min(max(start, self.floor), self.maximum)
        if timing.min_rate:
            self.rate = max(self.rate, timing.min_rate)
        self.interval = 0.1
        self.stamp = now
        self.slow_start = True
        self.baseline = 0.0
        self.sent = self.answers = self.losses = self.local_drops = 0
        self.congestions = 0
        self.level = level
        self.history: list[tuple[float, float, str]] = []  # (time, rate, why) for -v output
        # the path's round trip (the smallest seen) once known: slow start then decides
        # every two round trips (5 ms at least) when that is sooner than its 25 ms, like a
        # TCP sender's slow start, which doubles per round trip
        self.path_rtt: float | None = None

    def on_sent(self, n: int = 1) -> None:
        self.sent += n

    def on_answer(self) -> None:
        self.answers += 1

    def on_loss(self) -> None:
        self.losses += 1

    def on_local_drop(self, n: int = 1) -> None:
        self.local_drops += n

    def tick(self, now: float) -> bool:
        """Close the current interval if it is over; True if the rate changed."""
        elapsed = now - self.stamp
        # slow start decides four times as often (every 25 ms: 5k -> 160k pps in 0.125 s),
        # or every two round trips with 20 answers in: the ramp to the machine's rate is
        # most of a short scan's overhead
        if self.slow_start:
            due = self.interval / 4
            if self.path_rtt is not None and self.answers >= 20:
                due = min(due, max(2 * self.path_rtt, 0.005))
        else:
            due = self.interval
        if elapsed < due:
            return False
        old = self.rate
        why = ""
        if self.fixed:
            pass
        elif self.local_drops:
            why = "local drops"
        elif self.answers >= 20:
            ratio = self.losses / self.answers
            if ratio > max(0.10, 3 * self.baseline + 0.03):
                why = f"loss {ratio:.0%}"
            else:
                self.baseline += (ratio - self.baseline) / 8
        if why:
            self.congestions += 1
            self.slow_start = False
            self.rate = max(self.floor, self.rate * 0.7)
        elif not self.fixed and self.sent >= 0.8 * self.rate * elapsed:
            self.rate = min(self.maximum, self.rate * (2.0 if self.slow_start else 1.1))
        self.stamp = now
        self.sent = self.answers = self.losses = self.local_drops = 0
        if self.rate != old:
            if len(self.history) < 1000:
                self.history.append((now, self.rate, why or "growth"))
            return True
        return False
