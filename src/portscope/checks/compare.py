"""Inside versus outside: a port open from the scanner that no socket of the host listens
on (``compare.unexpected``), from the comparison ``portscope audit --local / --netns /
--inventory`` leaves on the host (:func:`portscope.local.compare.merge_into_run`).

The other classes are not findings: exposed ports are rated by the exposure check
already, shielded, local-only and not-scanned ones are informational and shown in the
report's "inside vs outside" section. Without a comparison on the host: no findings.
"""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context
from portscope.local.advice import hint_texts
from portscope.local.compare import host_comparison, host_name
from portscope.model import (
    ComparedPort,
    Comparison,
    Exposure,
    Finding,
    Host,
    PortResult,
    PortState,
)


def _port(host: Host, e: ComparedPort) -> PortResult:
    for p in host.ports:
        if p.protocol is e.protocol and p.port == e.port:
            return p
    return PortResult(e.port, e.protocol, e.outside_state or PortState.OPEN,
                      e.outside_reason or "")


def evidence(c: Comparison, e: ComparedPort, host: Host) -> str:
    """What both views said (English: evidence is data, like a banner)."""
    where = f"{e.port}/{e.protocol.value}"
    state = e.outside_state.value if e.outside_state else "open"
    lines = [f"outside: {where} {state}"
             + (f" ({e.outside_reason})" if e.outside_reason else "")
             + f" at {host.address}"
             + (f" from {c.vantage}" if c.vantage else ""),
             f"inside: no socket of {c.hostname or 'the host'} listens on "
             f"{host.address} {where} (inventory taken "
             f"{c.inventory_taken.strftime('%Y-%m-%d %H:%M:%S UTC')})"]
    others = _sockets_on_port(c, e)
    if others:
        lines.append("sockets on this port at other addresses: " + ", ".join(others))
    lines += [f"hint: {t}" for t in hint_texts(e, "en")]
    return "\n".join(lines)


def _sockets_on_port(c: Comparison, e: ComparedPort) -> list[str]:
    out = []
    for other in c.entries:
        if other.key != e.key or other is e:
            continue
        for s in other.sockets:
            proc = f" {s.process}[{s.pid}]" if s.process and s.pid is not None else ""
            out.append(f"{s.display_address}:{s.port}{proc}")
    return list(dict.fromkeys(out))


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    c = host_comparison(host)
    if c is None:
        return
    for e in c.of(Exposure.UNEXPECTED):
        if e.address is not None and e.address != host.address:
            continue
        p = _port(host, e)
        yield ctx.finding(
            "compare.unexpected", host, p,
            params={"hostname": host_name(host)},
            evidence=evidence(c, e, host),
            extra={"comparison": {"class": e.exposure.value, "why": e.why,
                                  "hints": list(e.hints)}})
