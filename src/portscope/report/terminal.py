"""The interactive view: the nmap-like port table of each host, rendered with Rich.

``console.print(render_terminal(run))``. The plain-text equivalent (pipes, files) is the
``normal`` format. Every cell is a :class:`rich.text.Text` built from
:func:`~portscope.report._common.printable` text: neither Rich markup (``[red]``) nor
terminal escape sequences in a banner or a hostname can take effect.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from portscope import __version__
from portscope.model import Finding, Host, HostStatus, PortResult, PortState, ScanRun, Severity
from portscope.report._common import (
    display_host,
    extraports_total,
    finding_where,
    host_title,
    not_shown,
    printable,
    printable_lines,
    reason_label,
    service_label,
    severity_counts,
    sorted_findings,
    status_line,
    summary_line,
    version_label,
)

STATE_STYLES: dict[PortState, str] = {
    PortState.OPEN: "green",
    PortState.CLOSED: "dim",
    PortState.FILTERED: "yellow",
    PortState.UNFILTERED: "",
    PortState.OPEN_FILTERED: "yellow",
    PortState.CLOSED_FILTERED: "dim yellow",
}

SEVERITY_STYLES: dict[Severity, str] = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _table() -> Table:
    return Table(box=None, show_header=True, header_style="bold", pad_edge=False,
                 show_edge=False, padding=(0, 1, 0, 0), expand=False)


def port_table(host: Host) -> Table:
    """PORT STATE SERVICE REASON [VERSION] for a host from ``display_host``."""
    with_version = any(version_label(p.service) for p in host.ports)
    table = _table()
    for name in ("PORT", "STATE", "SERVICE", "REASON"):
        table.add_column(name, no_wrap=True)
    if with_version:
        table.add_column("VERSION", overflow="fold")
    for p in host.ports:
        table.add_row(*_port_cells(p, with_version))
    return table


def _port_cells(p: PortResult, with_version: bool) -> list[Text]:
    detected = p.service is not None and p.service.detected
    cells = [
        Text(f"{p.port}/{p.protocol.value}"),
        Text(p.state.value, style=STATE_STYLES.get(p.state, "")),
        # a port-table guess is shown plainly dimmed: a name, not a detection
        Text(service_label(p.service), style="" if detected else "dim"),
        Text(reason_label(p), style="dim"),
    ]
    if with_version:
        cells.append(Text(version_label(p.service)))
    return cells


def findings_table(findings: list[Finding]) -> Table:
    """Worst first: severity, where, and the title with why and what to do."""
    table = _table()
    table.add_column("SEVERITY", no_wrap=True)
    table.add_column("PORT", no_wrap=True)
    table.add_column("FINDING", overflow="fold")
    for f in sorted_findings(findings):
        cell = Text(printable(f.title))
        cell.append(f" [{printable(f.check)}]", style="dim")
        for label, value in (("why", f.severity_reason), ("fix", f.remediation)):
            if value:
                cell.append(f"\n{label}: " + "\n     ".join(printable_lines(value)), style="dim")
        table.add_row(Text(f.severity.value.upper(), style=SEVERITY_STYLES[f.severity]),
                      Text(finding_where(f)), cell)
    return table


def host_renderables(host: Host) -> list[RenderableType]:
    h = display_host(host)
    title = host_title(h)
    heading = Text(f"portscope {__version__} scan report for ", style="bold")
    heading.append(title, style="bold cyan")
    if h.status is HostStatus.DOWN:
        heading.append(" [host down" + (f", received {printable(h.reason)}" if h.reason else "")
                       + "]", style="red")
        out: list[RenderableType] = [heading]
    else:
        out = [heading, Text(status_line(h), style="green" if h.status is HostStatus.UP else "")]
        if len(h.hostnames) > 1:
            out.append(Text("Other names: " + ", ".join(printable(n) for n in h.hostnames[1:])))
        if h.extraports and not h.ports:
            out.append(Text(f"All {extraports_total(h)} scanned ports on {title} are in "
                            "ignored states."))
        hidden = not_shown(h)
        if hidden:
            out.append(Text(f"Not shown: {hidden}", style="dim"))
        if h.ports:
            out.append(port_table(h))
        if h.mac:
            out.append(Text(f"MAC Address: {printable(h.mac)}"))
        if h.os is not None:
            name = printable(h.os.name)
            out.append(Text(f"OS details: {name}" if h.os.accuracy >= 100
                            else f"OS guess: {name} ({h.os.accuracy}%)"))
            if h.os.cpe:
                out.append(Text("OS CPE: " + " ".join(printable(c) for c in h.os.cpe)))
    if h.findings:
        out.append(Text(f"Findings: {severity_counts(h.findings)}", style="bold"))
        out.append(findings_table(list(h.findings)))
    return out


def summary(run: ScanRun) -> Text:
    """One line: ``portscope done: 1 IP address (1 host up) scanned in 1.79 seconds``, the
    findings by severity, and a warning for an interrupted scan."""
    line = Text(f"portscope done: {summary_line(run)}", style="bold")
    findings = [f for _, f in run.findings]
    if findings:
        line.append(f"; findings: {severity_counts(findings)}",
                    style=SEVERITY_STYLES[max((f.severity for f in findings),
                                              key=lambda s: s.rank)])
    if not run.complete:
        line.append(" (interrupted: results are incomplete)", style="bold yellow")
    return line


def render_terminal(run: ScanRun) -> Group:
    """Everything to print for *run*: each host's report, then the summary line."""
    parts: list[RenderableType] = []
    for i, host in enumerate(run.hosts):
        if i:
            parts.append(Text(""))
        parts.extend(host_renderables(host))
    if run.hosts:
        parts.append(Text(""))
    parts.append(summary(run))
    return Group(*parts)


__all__ = ["render_terminal"]
