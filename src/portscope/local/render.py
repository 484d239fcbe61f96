"""Views of an inventory and a comparison: plain text (pipes, files), Rich (terminals), and
the inventory as an nmap-XML-like :class:`~portscope.model.ScanRun`. Pure: no I/O.

Process names and command lines are chosen by whoever started the process, so every
cell goes through :func:`~portscope.report._common.printable`: no escape sequence or
Rich markup in a process name can take effect.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from portscope.local import advice
from portscope.model import (
    BindScope,
    ComparedPort,
    Comparison,
    Exposure,
    Host,
    HostStatus,
    Inventory,
    ListeningSocket,
    PortResult,
    PortState,
    ScanRun,
    Service,
    format_time,
    unmap,
)
from portscope.report._common import printable

SCOPE_STYLES = {BindScope.ALL: "yellow", BindScope.SPECIFIC: "cyan", BindScope.LOOPBACK: "green"}
CLASS_STYLES = {
    Exposure.EXPOSED: "bold red",
    Exposure.UNEXPECTED: "bold magenta",
    Exposure.UNDETERMINED: "yellow",
    Exposure.CLOSED_BUT_LISTED: "cyan",
    Exposure.SHIELDED: "green",
    Exposure.NOT_SCANNED: "dim",
    Exposure.LOCAL_ONLY: "dim green",
}
SEVERITY_STYLES = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                   "low": "cyan", "info": "dim"}


def align(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell by display width (Japanese is two cells wide)."""
    if not rows:
        return []
    ncols = max(len(r) for r in rows)
    widths = [max((cell_len(r[i]) for r in rows if i < len(r)), default=0)
              for i in range(ncols)]
    out = []
    for r in rows:
        cells = [c + " " * (widths[i] - cell_len(c)) if i < len(r) - 1 else c
                 for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
    return out


def user_label(sock: ListeningSocket) -> str | None:
    """The socket's owner, else the user of its first process."""
    if sock.user:
        return sock.user
    return next((p.user for p in sock.processes if p.user), None)


def processes_label(sock: ListeningSocket) -> tuple[str, str]:
    """("sshd,sshd", "812,813") for the processes holding *sock*."""
    if not sock.processes:
        return ("-", "-")
    names = list(dict.fromkeys(printable(p.name or "?") for p in sock.processes))
    pids = [str(p.pid) for p in sock.processes]
    if len(pids) > 3:
        pids = [*pids[:3], f"+{len(pids) - 3}"]
    return (",".join(names), ",".join(pids))


# --------------------------------------------------------------------------------------
# inventory


def inventory_header(inv: Inventory) -> str:
    where = printable(inv.hostname or "this host")
    if inv.netns:
        where += f" (network namespace {printable(inv.netns)})"
    return (f"Listening sockets of {where} at {format_time(inv.taken)} "
            f"({inv.collector or 'unknown collector'}; process details {inv.process_detail})")


_INV_HEADER = ["PROTO", "ADDRESS", "PORT", "SCOPE", "SERVICE", "PID", "PROCESS", "USER"]


def _inv_row(s: ListeningSocket) -> list[str]:
    names, pids = processes_label(s)
    return [s.protocol.value, printable(s.display_address), str(s.port), s.scope.value,
            printable(s.service or "-"), pids, names, printable(user_label(s) or "-")]


def render_inventory_text(inv: Inventory) -> str:
    lines = [inventory_header(inv), ""]
    lines += align([_INV_HEADER, *(_inv_row(s) for s in inv.sockets)])
    lines.append("")
    lines.append(_inventory_summary(inv))
    lines += [f"Note: {printable(n)}" for n in inv.notes]
    return "\n".join(lines) + "\n"


def _inventory_summary(inv: Inventory) -> str:
    tcp = sum(1 for s in inv.sockets if s.protocol.value == "tcp")
    udp = len(inv.sockets) - tcp
    by = {sc: sum(1 for s in inv.sockets if s.scope is sc) for sc in BindScope}
    return (f"{tcp} TCP listening, {udp} UDP bound: {by[BindScope.ALL]} on all addresses, "
            f"{by[BindScope.SPECIFIC]} on a specific address, {by[BindScope.LOOPBACK]} "
            f"on loopback only")


def render_inventory_rich(inv: Inventory) -> Group:
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False,
                  padding=(0, 2, 0, 0))
    for h in _INV_HEADER:
        table.add_column(h, justify="right" if h in ("PORT", "PID") else "left")
    for s in inv.sockets:
        row = [Text(c) for c in _inv_row(s)]
        row[3].stylize(SCOPE_STYLES[s.scope])
        if s.scope is BindScope.ALL:
            row[1].stylize("bold")
        table.add_row(*row)
    parts: list[RenderableType] = [Text(inventory_header(inv), style="bold"), table,
                                   Text(_inventory_summary(inv))]
    parts += [Text(f"Note: {printable(n)}", style="yellow") for n in inv.notes]
    return Group(*parts)


def inventory_to_run(inv: Inventory, *, run_id: str = "") -> ScanRun:
    """The inventory as a scan result, one host per local address with the ports that
    listen there (wildcards expanded to every address of the family, as IVRE's
    localscan does), for the nmap-XML and JSON outputs of other tools."""
    addresses = [a.address for a in inv.addresses] or ["127.0.0.1"]
    hosts = []
    for addr in dict.fromkeys(addresses):
        ip = ipaddress.ip_address(unmap(addr))
        if ip.is_link_local:
            continue
        ports: dict[tuple[str, int], PortResult] = {}
        for s in inv.sockets:
            if not s.reaches(addr) or s.key in ports:
                continue
            names, pids = processes_label(s)
            extra = "; ".join(x for x in (f"pid {pids}" if pids != "-" else "",
                                          f"user {printable(user_label(s) or '')}"
                                          if user_label(s) else "",
                                          f"bound {s.display_address}") if x)
            ports[s.key] = PortResult(
                port=s.port, protocol=s.protocol, state=PortState.OPEN, reason="local-socket",
                service=Service(name=s.service or "unknown",
                                product=names if names != "-" else None, extrainfo=extra,
                                method="local", confidence=10))
        if ports:
            hosts.append(Host(address=addr, status=HostStatus.UP, reason="local-socket",
                              hostnames=(inv.hostname,) if inv.hostname else (),
                              ports=tuple(sorted(ports.values(),
                                                 key=lambda p: (p.protocol.value, p.port)))))
    run = ScanRun(id=run_id or f"local-{format_time(inv.taken)}", started=inv.taken,
                  finished=inv.taken, command="portscope local", scan_types=("local",),
                  vantage=f"{inv.hostname} (local sockets)",
                  extra={"collector": inv.collector, "netns": inv.netns})
    return run.with_hosts(hosts)


# --------------------------------------------------------------------------------------
# comparison


def _local_label(e: ComparedPort) -> str:
    if not e.sockets:
        return "-"
    return ",".join(dict.fromkeys(printable(s.display_address) for s in e.sockets))


def _process_label(e: ComparedPort) -> str:
    names = []
    for s in e.sockets:
        n, p = processes_label(s)
        if n != "-":
            names.append(f"{n}({p})")
    return ",".join(dict.fromkeys(names)) or "-"


def _outside_label(e: ComparedPort) -> str:
    if e.outside_state is None:
        return "-"
    reason = f" ({e.outside_reason})" if e.outside_reason else ""
    return f"{e.outside_state.value}{reason}"


def comparison_header(c: Comparison, lang: str) -> list[str]:
    started = format_time(c.scan_started) if c.scan_started else "?"
    if lang == "ja":
        return [f"{printable(c.hostname)} の待ち受け一覧({format_time(c.inventory_taken)})と"
                f"スキャン {printable(c.scan_id)}({started}、{printable(c.vantage) or '不明な地点'}"
                f"から)の比較",
                f"比較したアドレス: {', '.join(c.addresses)}"]
    return [f"Listening sockets of {printable(c.hostname)} (taken "
            f"{format_time(c.inventory_taken)}) against scan {printable(c.scan_id)} "
            f"({started}, from {printable(c.vantage) or 'an unknown vantage point'})",
            f"Addresses compared: {', '.join(c.addresses)}"]


def _header_row(lang: str, with_risk: bool) -> list[str]:
    if lang == "ja":
        h = ["分類", "アドレス", "ポート", "待ち受け", "プロセス", "外からの状態"]
        return [*h, "危険度", "理由"] if with_risk else [*h, "理由"]
    h = ["CLASS", "ADDRESS", "PORT", "LOCAL", "PROCESS", "OUTSIDE"]
    return [*h, "RISK", "WHY"] if with_risk else [*h, "WHY"]


def _row(e: ComparedPort, lang: str, with_risk: bool) -> list[str]:
    why = "; ".join([advice.why_text(e, lang), *advice.hint_texts(e, lang)])
    row = [advice.class_text(e.exposure, lang).label, e.address or "-",
           f"{e.port}/{e.protocol.value}" + (f" {printable(e.service)}" if e.service else ""),
           _local_label(e), _process_label(e), _outside_label(e)]
    if with_risk:
        row.append(e.risk.severity.value if e.risk else "-")
    return [*row, why]


def _summary(c: Comparison, lang: str) -> str:
    counts = [(advice.class_text(Exposure(k), lang).label, n) for k, n in c.counts().items()
              if n]
    if lang == "ja":
        return "集計: " + ("、".join(f"{label} {n}" for label, n in counts) or "なし")
    return "Summary: " + (", ".join(f"{n} {label}" for label, n in counts) or "nothing to compare")


def _advice_lines(c: Comparison, lang: str) -> list[str]:
    present = sorted({e.exposure for e in c.entries}, key=lambda x: x.rank)
    title = "対処" if lang == "ja" else "What to do"
    out = [f"{title}:"]
    for x in present:
        t = advice.class_text(x, lang)
        out.append(f"  {t.label}: {t.meaning}")
        out.append(f"    -> {t.advice}")
    risky = [e for e in c.entries if e.risk and e.risk.remediation]
    for e in risky:
        assert e.risk is not None
        out.append(f"  {e.port}/{e.protocol.value} [{e.risk.severity.value}] "
                   f"{printable(e.risk.title)}: {printable(e.risk.remediation)}")
    return out


def render_comparison_text(c: Comparison, lang: str | None = None) -> str:
    lg = lang or c.lang
    with_risk = c.risk_source is not None
    lines = [*comparison_header(c, lg), ""]
    lines += align([_header_row(lg, with_risk), *(_row(e, lg, with_risk) for e in c.entries)])
    lines += ["", _summary(c, lg)]
    lines += [f"Note: {n}" if lg == "en" else f"注: {n}" for n in advice.note_texts(c, lg)]
    if c.entries:
        lines += ["", *_advice_lines(c, lg)]
    return "\n".join(lines) + "\n"


def render_comparison_rich(c: Comparison, lang: str | None = None) -> Group:
    lg = lang or c.lang
    with_risk = c.risk_source is not None
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False,
                  padding=(0, 2, 0, 0))
    for h in _header_row(lg, with_risk):
        table.add_column(h, overflow="fold")
    for e in c.entries:
        row = [Text(x) for x in _row(e, lg, with_risk)]
        row[0].stylize(CLASS_STYLES[e.exposure])
        if with_risk and e.risk:
            row[6].stylize(SEVERITY_STYLES.get(e.risk.severity.value, ""))
        table.add_row(*row)
    parts: list[RenderableType] = [Text(x, style="bold") for x in comparison_header(c, lg)]
    parts += [table, Text(_summary(c, lg))]
    parts += [Text(("Note: " if lg == "en" else "注: ") + n, style="yellow")
              for n in advice.note_texts(c, lg)]
    if c.entries:
        parts += [Text(line) for line in _advice_lines(c, lg)]
    return Group(*parts)
