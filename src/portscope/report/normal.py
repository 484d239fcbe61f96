"""``normal``: nmap-like human text (``-oN``), also the plain-text fallback of the
terminal view.

::

    # portscope 0.1.0 scan initiated Sun Nov 22 02:37:32 2026 UTC as: portscope scan ...
    portscope 0.1.0 scan report for 127.0.0.1 (localhost)
    Host is up, received localhost-response (0.00039s latency).
    Not shown: 99 closed tcp ports (conn-refused)
    PORT      STATE SERVICE REASON  VERSION
    47022/tcp open  ssh     syn-ack OpenSSH 8.9p1 (protocol 2.0)
    47080/tcp open  http    syn-ack

    Findings: 1 medium
      MEDIUM 47080/tcp Web server without TLS [http-cleartext]
                       why: ...
                       fix: ...

    portscope done: 1 IP address (1 host up) scanned in 1.79 seconds

A port-table guess shows only the service name (as nmap does without -sV); product and
version appear only for detected services. Every text from the network or the user is
shown through :func:`~portscope.report._common.printable`, so banners cannot inject
terminal escape sequences. Times are UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import ClassVar

from portscope import __version__
from portscope.model import Finding, Host, HostStatus, ScanRun
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
from portscope.report.base import Output

INTERRUPTED = "WARNING: the scan was interrupted; these results are incomplete."


def align(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as text columns separated by one space, every column but the last padded
    to its widest cell (nmap's port table)."""
    if not rows:
        return []
    ncols = max(len(r) for r in rows)
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(ncols)]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append(" ".join(cells).rstrip())
    return lines


def port_table(host: Host) -> list[str]:
    """The PORT STATE SERVICE REASON [VERSION] table of a display host."""
    with_version = any(version_label(p.service) for p in host.ports)
    header = ["PORT", "STATE", "SERVICE", "REASON"] + (["VERSION"] if with_version else [])
    rows = [header]
    for p in host.ports:
        row = [f"{p.port}/{p.protocol.value}", p.state.value, service_label(p.service),
               reason_label(p)]
        if with_version:
            row.append(version_label(p.service))
        rows.append(row)
    return align(rows)


def findings_block(findings: Sequence[Finding]) -> list[str]:
    """``Findings: 1 high, 2 low`` and one entry per finding, worst first, each with why
    it has that severity and what to do."""
    if not findings:
        return []
    items = sorted_findings(findings)
    sev_w = max(len(f.severity.value) for f in items)
    where_w = max(len(finding_where(f)) for f in items)
    indent = " " * (2 + sev_w + 1 + where_w + 1)
    lines = [f"Findings: {severity_counts(items)}"]
    for f in items:
        title = printable(f.title)
        check = printable(f.check)
        lines.append(f"  {f.severity.value.upper():<{sev_w}} {finding_where(f):<{where_w}} "
                     f"{title} [{check}]".rstrip())
        for label, value in (("why", f.severity_reason), ("fix", f.remediation)):
            if not value:
                continue
            body = printable_lines(value)
            lines.append(f"{indent}{label}: {body[0]}".rstrip())
            lines.extend(f"{indent}     {more}".rstrip() for more in body[1:])
    return lines


def host_report(host: Host) -> list[str]:
    """The lines of one host's report."""
    h = display_host(host)
    title = host_title(h)
    if h.status is HostStatus.DOWN:
        reason = f", received {printable(h.reason)}" if h.reason else ""
        lines = [f"portscope {__version__} scan report for {title} [host down{reason}]"]
        return lines + findings_block(h.findings)
    lines = [f"portscope {__version__} scan report for {title}", status_line(h)]
    if len(h.hostnames) > 1:
        lines.append("Other names: " + ", ".join(printable(n) for n in h.hostnames[1:]))
    hidden = not_shown(h)
    if h.extraports and not h.ports:
        lines.append(f"All {extraports_total(h)} scanned ports on {title} are in ignored states.")
    if hidden:
        lines.append(f"Not shown: {hidden}")
    if h.ports:
        lines.extend(port_table(h))
    if h.mac:
        lines.append(f"MAC Address: {printable(h.mac)}")
    if h.os is not None:
        name = printable(h.os.name)
        if h.os.accuracy >= 100:
            lines.append(f"OS details: {name}")
        else:
            lines.append(f"OS guess: {name} ({h.os.accuracy}%)")
        if h.os.cpe:
            lines.append("OS CPE: " + " ".join(printable(c) for c in h.os.cpe))
    if h.findings:
        lines.append("")
        lines.extend(findings_block(h.findings))
    return lines


def render_normal(run: ScanRun) -> str:
    """The whole report as text."""
    return "".join(iter_normal(run))


def iter_normal(run: ScanRun) -> Iterator[str]:
    """:func:`render_normal` in pieces, one host at a time."""
    started = run.started.astimezone(UTC).ctime()
    yield (f"# portscope {__version__} scan initiated {started} UTC as: "
           f"{printable(run.command or 'portscope')}\n")
    for i, host in enumerate(run.hosts):
        yield ("\n" if i else "") + "\n".join(host_report(host)) + "\n"
    tail = [""]
    if not run.complete:
        tail.append(INTERRUPTED)
    tail.append(f"portscope done: {summary_line(run)}")
    yield "\n".join(tail) + "\n"


class NormalOutput(Output):
    name: ClassVar[str] = "normal"

    def finish(self, run: ScanRun) -> None:
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        for piece in iter_normal(run):
            if not self.unicode_ok:
                try:
                    piece = piece.encode(encoding, "backslashreplace").decode(encoding)
                except (LookupError, UnicodeError):
                    piece = piece.encode("ascii", "backslashreplace").decode("ascii")
            self.write(piece)


__all__ = ["NormalOutput", "iter_normal", "render_normal"]
