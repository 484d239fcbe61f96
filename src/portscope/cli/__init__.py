"""The ``portscope`` command: one module per subcommand, registered in ``COMMANDS``.

Errors never show a traceback: :class:`~portscope.errors.PortscopeError` becomes
``portscope: error: <message>`` and its documented exit code; anything else is an
internal error (exit 70; ``PORTSCOPE_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from typing import Any

import click

from portscope import __version__
from portscope.errors import EXIT_INTERRUPTED, EXIT_SOFTWARE, EXIT_USAGE, PortscopeError

# subcommand name -> module (lazily imported so `portscope --help` stays fast)
COMMANDS: dict[str, str] = {
    "compare": "portscope.cli.compare",
    "local": "portscope.cli.local",
    "scan": "portscope.cli.scan",
    "audit": "portscope.cli.audit",
    "runs": "portscope.cli.runs",
    "show": "portscope.cli.show",
    "query": "portscope.cli.query",
    "diff": "portscope.cli.diff",
    "import": "portscope.cli.import_",
    "export": "portscope.cli.export",
    "db": "portscope.cli.db",
    "watch": "portscope.cli.watch",
    "alerts": "portscope.cli.alerts",
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        cmd = importlib.import_module(module).command
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="portscope")
def cli() -> None:
    """portscope: which ports of your hosts are open to whom, what answers there,
    how dangerous that is, and what changed.

    Start with:  portscope scan 127.0.0.1
    """


def fail(message: str, code: int) -> None:
    click.echo(f"portscope: error: {message}", err=True)
    sys.exit(code)


def run() -> None:
    """The command's entry point (console script and ``python -m portscope``): ``main``,
    then the interpreter's exit without its teardown. Freeing every object of a large
    scan one by one (65,535 port results after a -p- scan) took 0.05-0.15 s after the
    work was done; the exit handlers still run (and anything still running, a thread or
    a child process, gets the normal, complete exit instead)."""
    try:
        main()
        status: Any = 0
    except SystemExit as exc:
        status = exc.code
    if status is None:
        status = 0
    elif not isinstance(status, int):
        click.echo(str(status), err=True)
        status = 1
    busy = any(t.is_alive() and not t.daemon for t in threading.enumerate()
               if t is not threading.main_thread())
    mp = sys.modules.get("multiprocessing")
    if busy or (mp is not None and mp.active_children()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="portscope", standalone_mode=False)
    except PortscopeError as exc:
        fail(exc.message, exc.exit_code)
    except click.exceptions.Abort:
        click.echo("portscope: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("portscope: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message() if hasattr(exc, "format_message") else str(exc),
                   err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        # usage problems: one line plus a hint, not click's multi-line block
        msg = exc.format_message()
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"portscope: error: {msg}{hint}", err=True)
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # output piped into `head` and friends: not an error
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        finally:
            sys.exit(0)
    except Exception as exc:
        if os.environ.get("PORTSCOPE_DEBUG"):
            raise
        fail(f"internal error: {exc.__class__.__name__}: {exc} "
             f"(a bug; PORTSCOPE_DEBUG=1 shows the traceback)", EXIT_SOFTWARE)
