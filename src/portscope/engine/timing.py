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

    __slots__ = ("_max", "_min", "initial", "rttvar", "samples", "srtt")

    def __init__(self, timing: Timing) -> None:
        self.initial = timing.initial_rtt_timeout
        self._min = timing.min_rtt_timeout
        self._max = timing.max_rtt_timeout
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.samples = 0

    def update(self, sample: float) -> None:
        sample = max(sample, 0.0)
        self.samples += 1
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
