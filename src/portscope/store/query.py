"""The query language of ``portscope query`` (documented in docs/query.md).

A query is terms separated by spaces; terms with different keys must all match (AND),
comma-separated values of one term are alternatives (OR), a leading ``-`` negates a term::

    port:445 state:open
    port:22,80,8000-8100 -state:closed,filtered
    service:ssh,http* product:openssh version:8.*
    host:198.18.0.0/24 host:2001:db8::1 proto:udp
    since:7d before:2025-01-31 run:20250101T

Keys: ``port``, ``proto``, ``state``, ``reason``, ``service``, ``product``, ``version``
(``*`` and ``?`` are wildcards; text matches ignore case), ``host`` (address, prefix or
range), ``since``/``before`` (``30m``, ``12h``, ``7d``, ``2w`` ago, or an ISO date/time),
``run`` (run id or id prefix). A bare word is a shorthand: ``open``/``closed``/... is a
state, a number a port, an address or prefix a host, anything else a service name.

Parsing is pure (``now`` is a parameter); :meth:`Query.apply` turns a query into
SQLAlchemy clauses for the store.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from portscope.errors import UsageError
from portscope.model import PortState

KEYS = ("port", "proto", "state", "reason", "service", "product", "version", "host",
        "since", "before", "run")
_ALIASES = {"protocol": "proto", "ports": "port", "svc": "service", "ip": "host",
            "address": "host", "addr": "host", "after": "since", "until": "before"}
_STATES = {s.value for s in PortState}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` -> timedelta; UsageError otherwise."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise UsageError(f"bad duration {text!r} (e.g. 30s, 15m, 1h, 7d, 2w)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_when(text: str, now: datetime) -> datetime:
    """A duration ago (``7d``) or an ISO 8601 date/time (UTC unless it says otherwise)."""
    try:
        return now - parse_duration(text)
    except UsageError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad time {text!r}: use a duration ago (7d, 12h) or an ISO date "
                         f"(2025-01-31, 2025-01-31T12:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _port_ranges(values: list[str], term: str) -> list[tuple[int, int]]:
    out = []
    for v in values:
        lo, _, hi = v.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise UsageError(f"bad port in {term!r}: {v!r}") from None
        if not (0 <= a <= b <= 65535):
            raise UsageError(f"bad port range in {term!r}: {v!r}")
        out.append((a, b))
    return out


Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _host_matchers(values: list[str], term: str) -> list[Callable[[str], bool]]:
    out: list[Callable[[str], bool]] = []
    for v in values:
        try:
            if "/" in v:
                out.append(functools.partial(_in_net, net=ipaddress.ip_network(v, strict=False)))
                continue
            if "-" in v:
                a_s, _, b_s = v.partition("-")
                lo, hi = ipaddress.ip_address(a_s), ipaddress.ip_address(b_s)
                if lo.version != hi.version:
                    raise ValueError
                out.append(functools.partial(_in_range, lo=lo, hi=hi))
                continue
            ip = ipaddress.ip_address(v)
            out.append(functools.partial(operator.eq, str(ip)))
        except ValueError:
            raise UsageError(f"bad host in {term!r}: {v!r} (an address, a prefix like "
                             f"198.18.0.0/24 or a range like 198.18.0.1-198.18.0.9)") from None
    return out


def _in_net(address: str, net: Net) -> bool:
    try:
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


def _in_range(address: str, lo: Any, hi: Any) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return bool(ip.version == lo.version and lo <= ip <= hi)


@dataclass(frozen=True)
class Term:
    key: str
    values: tuple[str, ...]
    negate: bool = False


@dataclass
class Query:
    text: str
    terms: list[Term] = field(default_factory=list)
    since: datetime | None = None
    before: datetime | None = None
    _hosts: list[tuple[bool, list[Callable[[str], bool]]]] = field(default_factory=list)

    def host_ok(self, address: str) -> bool:
        """Host terms are matched here (prefixes and ranges over IPv4 and IPv6 work the
        same on every backend)."""
        for negate, matchers in self._hosts:
            hit = any(m(address) for m in matchers)
            if hit == negate:
                return False
        return True

    def port_ok(self, port: int) -> bool:
        """The ``port`` terms, matched here (for compactly stored port ranges, see
        :meth:`apply` with ``ports=False``)."""
        for term in self.terms:
            if term.key != "port":
                continue
            rngs = _port_ranges(list(term.values), f"port:{','.join(term.values)}")
            hit = any(a <= port <= b for a, b in rngs)
            if hit == term.negate:
                return False
        return True

    def port_ranges(self) -> list[tuple[int, int]] | None:
        """The ports the positive ``port`` terms allow, as (lo, hi) bounds of each term
        intersected (None: any port); negated terms are left to :meth:`port_ok`."""
        lo, hi, seen = 0, 65535, False
        for term in self.terms:
            if term.key == "port" and not term.negate:
                rngs = _port_ranges(list(term.values), term.key)
                lo = max(lo, min(a for a, _ in rngs))
                hi = min(hi, max(b for _, b in rngs))
                seen = True
        return [(lo, hi)] if seen else None

    def apply(self, select: Any, cols: Any, *, time_col: Any, dialect: str,
              ports: bool = True) -> Any:
        """Add the WHERE clauses of this query to a SQLAlchemy select over a table with
        the port columns (``ports`` or ``current_ports``). ``ports=False`` leaves the
        ``port`` terms out (the caller matches them with :meth:`port_ok`)."""
        import sqlalchemy as sa

        for term in self.terms:
            clause: Any
            if term.key == "port":
                if not ports:
                    continue
                rngs = _port_ranges(list(term.values), f"port:{','.join(term.values)}")
                clause = sa.or_(*[cols.port == a if a == b else cols.port.between(a, b)
                                  for a, b in rngs])
            elif term.key in ("proto", "state", "reason"):
                col = {"proto": cols.protocol, "state": cols.state, "reason": cols.reason}
                clause = col[term.key].in_([v.lower() for v in term.values])
            elif term.key in ("service", "product", "version"):
                col = {"service": cols.service_name, "product": cols.product,
                       "version": cols.version}[term.key]
                clause = sa.or_(*[_text_match(col, v) for v in term.values])
            elif term.key == "run":
                clause = sa.or_(*[cols.run_id.like(v.replace("%", "").replace("_", "\\_")
                                                   + "%", escape="\\")
                                  for v in term.values])
            else:
                continue
            select = select.where(sa.not_(clause) if term.negate else clause)
        if self.since is not None:
            select = select.where(time_col >= self.since.astimezone(UTC))
        if self.before is not None:
            select = select.where(time_col < self.before.astimezone(UTC))
        return select

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text,
                "terms": [{"key": t.key, "values": list(t.values), "negate": t.negate}
                          for t in self.terms]}


def _text_match(col: Any, value: str) -> Any:
    import sqlalchemy as sa

    v = value.lower()
    if "*" in v or "?" in v:
        pattern = (v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                   .replace("*", "%").replace("?", "_"))
        return sa.func.lower(col).like(pattern, escape="\\")
    return sa.func.lower(col) == v


def _bare(word: str) -> tuple[str, str]:
    w = word.lower()
    if w in _STATES:
        return "state", w
    if re.fullmatch(r"\d+(-\d+)?", w):
        return "port", w
    if w in ("tcp", "udp"):
        return "proto", w
    try:
        ipaddress.ip_network(w, strict=False)
        return "host", w
    except ValueError:
        pass
    return "service", w


def parse_query(text: str, *, now: datetime | None = None) -> Query:
    """Parse the query language; :class:`UsageError` with the bad term otherwise."""
    now = now or datetime.now(UTC)
    q = Query(text=text)
    for raw in text.split():
        negate = raw.startswith(("-", "!")) and len(raw) > 1 and not raw[1].isdigit()
        body = raw[1:] if negate else raw
        key, sep, value = body.partition(":")
        key_l = key.lower()
        if not sep or (key_l not in KEYS and key_l not in _ALIASES):
            if sep and key_l and not _looks_like_address(body):
                raise UsageError(f"unknown query key {key!r} in {raw!r} "
                                 f"(keys: {', '.join(KEYS)}; see docs/query.md)")
            key_l, value = _bare(body)
        key_l = _ALIASES.get(key_l, key_l)
        values = tuple(v for v in value.split(",") if v)
        if not values:
            raise UsageError(f"empty value in query term {raw!r}")
        if key_l == "state":
            bad = [v for v in values if v.lower() not in _STATES]
            if bad:
                raise UsageError(f"unknown state {bad[0]!r} in {raw!r} (states: "
                                 f"{', '.join(sorted(_STATES))})")
        if key_l == "proto":
            bad = [v for v in values if v.lower() not in ("tcp", "udp")]
            if bad:
                raise UsageError(f"unknown protocol {bad[0]!r} in {raw!r} (tcp, udp)")
        if key_l == "port":
            _port_ranges(list(values), raw)
        if key_l in ("since", "before"):
            if negate or len(values) != 1:
                raise UsageError(f"{key_l}: takes one time and no '-': {raw!r}")
            when = parse_when(values[0], now)
            if key_l == "since":
                q.since = when
            else:
                q.before = when
            continue
        if key_l == "host":
            q._hosts.append((negate, _host_matchers(list(values), raw)))
        q.terms.append(Term(key_l, values, negate))
    return q


def _looks_like_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
