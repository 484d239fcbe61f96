"""Options and plumbing shared by the subcommands that produce results."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from portscope.model import Host, PortResult, ScanRun

F = TypeVar("F", bound=Callable[..., Any])

# (option names, format, help)
OUTPUT_OPTIONS: list[tuple[tuple[str, ...], str, str]] = [
    (("--json", "-oJ", "json_out"), "json", "write the result document (JSON contract) to FILE"),
    (("--jsonl", "jsonl_out"), "jsonl", "stream results as JSON Lines to FILE as they arrive"),
    (("-oX", "xml_out"), "xml", "write nmap-compatible XML to FILE"),
    (("-oN", "normal_out"), "normal", "write nmap-style normal text to FILE"),
]


def output_options(func: F) -> F:
    """``--json/-oJ``, ``--jsonl``, ``-oX``, ``-oN`` (``-`` means standard output)."""
    for names, _fmt, help_text in reversed(OUTPUT_OPTIONS):
        func = click.option(*names, metavar="FILE", default=None, help=help_text)(func)
    return func


def requested_outputs(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """[(format, path)] from the parsed output options."""
    out = []
    for names, fmt, _ in OUTPUT_OPTIONS:
        path = kwargs.get(names[-1])
        if path:
            out.append((fmt, path))
    return out


class Outputs:
    """Fans scan events out to every requested output (opened before the scan starts,
    so an unwritable path fails early)."""

    def __init__(self, requested: list[tuple[str, str]]) -> None:
        from portscope.report import open_output

        self.outputs = []
        self.to_stdout = any(path == "-" for _, path in requested)
        try:
            for fmt, path in requested:
                self.outputs.append(open_output(fmt, path))
        except BaseException:
            self.close()
            raise

    def start(self, run: ScanRun) -> None:
        for o in self.outputs:
            o.start(run)

    @property
    def wants_ports(self) -> bool:
        """Whether any output streams single ports (most write whole hosts)."""
        from portscope.report.base import Output

        return any(type(o).port is not Output.port for o in self.outputs)

    def port(self, address: str, result: PortResult) -> None:
        for o in self.outputs:
            o.port(address, result)

    def host(self, host: Host) -> None:
        for o in self.outputs:
            o.host(host)

    def finish(self, run: ScanRun) -> None:
        for o in self.outputs:
            o.finish(run)

    def close(self) -> None:
        for o in self.outputs:
            try:
                o.close()
            except Exception:
                pass


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
