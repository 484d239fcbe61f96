"""The error tree. Public APIs raise only :class:`PortscopeError` subclasses.

Every error carries a message a user can act on and an exit code the CLI returns.
A malformed reply from the network is *data*, never an exception: these are for
bad input, bad configuration and environment problems.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

# Documented exit codes (README "Exit codes").
EXIT_OK = 0
EXIT_DIFFERENT = 1  # diff: the two runs differ; audit --fail-on: findings at/above threshold
EXIT_ERROR = 2  # generic error (like ndiff)
EXIT_USAGE = 64  # EX_USAGE: bad target spec, bad port spec, unknown option value
EXIT_DATAERR = 65  # EX_DATAERR: corrupt import file, malformed data
EXIT_NOINPUT = 66  # EX_NOINPUT: unreadable input file
EXIT_NOHOST = 68  # EX_NOHOST: host name could not be resolved
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a needed service (database ...) is unavailable
EXIT_SOFTWARE = 70  # EX_SOFTWARE: internal error (a bug: please report)
EXIT_CANTCREAT = 73  # EX_CANTCREAT: cannot write an output file
EXIT_NOPERM = 77  # EX_NOPERM: needs root / CAP_NET_RAW
EXIT_INTERRUPTED = 130  # Ctrl-C


class PortscopeError(Exception):
    """Base of every error portscope raises on purpose."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PortscopeError):
    """The user asked for something malformed or contradictory."""

    exit_code = EXIT_USAGE


class TargetSpecError(UsageError):
    """A target specification could not be parsed."""


class PortSpecError(UsageError):
    """A port specification could not be parsed (or names an unknown service)."""


class ResolveError(PortscopeError):
    """A host name could not be resolved."""

    exit_code = EXIT_NOHOST


class InputFileError(PortscopeError):
    """A file given as input could not be read."""

    exit_code = EXIT_NOINPUT


class DataError(PortscopeError):
    """Input data is corrupt or not in the expected format (imports, saved runs)."""

    exit_code = EXIT_DATAERR


class OutputFileError(PortscopeError):
    """An output file could not be written."""

    exit_code = EXIT_CANTCREAT


class PermissionProblem(PortscopeError):
    """The operation needs privileges this process does not have."""

    exit_code = EXIT_NOPERM


class ServiceUnavailable(PortscopeError):
    """A service portscope depends on (a database, a mail server) is unreachable."""

    exit_code = EXIT_UNAVAILABLE


def describe_oserror(exc: OSError) -> str:
    """A short, human description of an OSError (no traceback, no repr noise)."""
    if exc.errno is not None and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or exc.__class__.__name__
    if exc.errno is not None:
        name = errno.errorcode.get(exc.errno)
        if name:
            text = f"{text} ({name})"
    return text


@contextmanager
def reading(path: str) -> Iterator[None]:
    """Map OS errors raised while reading *path* to :class:`InputFileError`."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InputFileError(f"cannot read {path}: not a text file ({exc.reason})") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {describe_oserror(exc)}") from None


@contextmanager
def writing(path: str) -> Iterator[None]:
    """Map OS errors raised while writing *path* to :class:`OutputFileError`."""
    try:
        yield
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {describe_oserror(exc)}") from None
