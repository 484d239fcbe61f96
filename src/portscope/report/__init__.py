"""Output formats: a registry of small :class:`Output` classes, one module each.

::

    with open_output("xml", "scan.xml") as out:     # "-" is standard output
        out.start(run_header)
        ...  out.port(address, result) / out.host(host) as the scan goes ...
        out.finish(final_run)                        # also on Ctrl-C (complete=False)

    text = render("normal", run)                     # a whole document as text

A new format is one module with an :class:`Output` subclass and one line in
``FORMATS``. The interactive Rich view is :func:`portscope.report.terminal.render_terminal`.
"""

from __future__ import annotations

import errno
import importlib
import io
import os
import secrets
import stat
import sys
from collections.abc import Iterator, MutableMapping
from typing import TextIO

from portscope.errors import UsageError, writing
from portscope.model import ScanRun
from portscope.report.base import Output
from portscope.report.jsonl import read_jsonl


class _Formats(MutableMapping[str, type[Output]]):
    """The registry: format name -> ``module:Class``, imported when first used (a scan
    writes one or two formats; importing all nine cost ~40 ms at every start)."""

    def __init__(self, where: dict[str, str]) -> None:
        self._where = where
        self._loaded: dict[str, type[Output]] = {}

    def __getitem__(self, name: str) -> type[Output]:
        cls = self._loaded.get(name)
        if cls is None:
            module, _, attr = self._where[name].partition(":")
            cls = self._loaded[name] = getattr(importlib.import_module(module), attr)
        return cls

    def __setitem__(self, name: str, cls: type[Output]) -> None:  # a format added at run time
        self._where[name] = f"{cls.__module__}:{cls.__qualname__}"
        self._loaded[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._where[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


FORMATS: MutableMapping[str, type[Output]] = _Formats({
    "json": "portscope.report.jsondoc:JSONOutput",
    "jsonl": "portscope.report.jsonl:JSONLinesOutput",
    "xml": "portscope.report.nmapxml:XMLOutput",
    "normal": "portscope.report.normal:NormalOutput",
    "html": "portscope.report.html:HTMLOutput",
    "markdown": "portscope.report.markdown:MarkdownOutput",
    "csv": "portscope.report.csvout:CSVOutput",
    "defectdojo": "portscope.report.defectdojo:DefectDojoOutput",
    "sarif": "portscope.report.sarif:SARIFOutput",
})

STDOUT = "-"


def output_class(fmt: str) -> type[Output]:
    """The :class:`Output` class of format *fmt*; :class:`UsageError` if unknown."""
    try:
        return FORMATS[fmt]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise UsageError(f"unknown output format {fmt!r} (choose from: {known})") from None


def render(fmt: str, run: ScanRun) -> str:
    """The whole document of *run* in format *fmt*, as text."""
    buf = io.StringIO()
    out = output_class(fmt)(buf)
    out.start(run)
    for host in run.hosts:
        out.host(host)
    out.finish(run)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# files


class _KeepOpen:
    """Standard output: flushed by Output.close, never closed."""

    def close(self, *, commit: bool) -> None:
        pass


class _InPlace:
    """A file written where it is (streaming formats, FIFOs, /dev/stdout ...)."""

    def __init__(self, stream: TextIO, path: str) -> None:
        self.stream, self.path = stream, path

    def close(self, *, commit: bool) -> None:
        with writing(self.path):
            self.stream.close()


class _Replacing:
    """A document written to a temporary file next to the target and renamed over it
    only once complete: a crash or an error never leaves half a document, nor destroys
    the previous file."""

    def __init__(self, stream: TextIO, tmp: str, target: str, path: str) -> None:
        self.stream, self.tmp, self.target, self.path = stream, tmp, target, path

    def close(self, *, commit: bool) -> None:
        try:
            with writing(self.path):
                self.stream.close()
                if commit:
                    try:
                        os.chmod(self.tmp, stat.S_IMODE(os.stat(self.target).st_mode))
                    except FileNotFoundError:
                        pass
                    os.replace(self.tmp, self.target)
        finally:
            if os.path.lexists(self.tmp):
                try:
                    os.unlink(self.tmp)
                except OSError:
                    pass


def _open_text(path: str, mode: str) -> TextIO:
    stream = open(path, mode, encoding="utf-8", newline="\n")  # noqa: SIM115 - a sink owns it
    assert isinstance(stream, io.TextIOWrapper)
    return stream


def _replaceable(path: str) -> str | None:
    """The real path of *path* if it is a regular file or does not exist yet (then a
    document may be renamed over it); None for a device, FIFO, directory ..."""
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError:
        return None
    return target if stat.S_ISREG(st.st_mode) else None


def open_output(fmt: str, path: str) -> Output:
    """An :class:`Output` of format *fmt* writing to *path* (``"-"``: standard output).

    The file is opened now, so a bad path fails before the scan starts, with an
    :class:`~portscope.errors.OutputFileError` whose one-line message names *path*.
    Streaming formats write the file in place and flush every event; document formats
    write a temporary file beside it that :meth:`Output.close` renames over *path* once
    :meth:`Output.finish` has completed (a failed run leaves any previous file alone).
    Call :meth:`Output.close` (or use ``with``) when done.
    """
    cls = output_class(fmt)
    if path == STDOUT:
        out = cls(sys.stdout)
        out.attach(_KeepOpen(), "standard output")
        return out
    with writing(path):
        target = None if cls.streaming else _replaceable(path)
        if target is not None:
            directory, base = os.path.split(target)
            tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
            try:
                stream = _open_text(tmp, "x")
            except PermissionError:
                # a directory we may not create files in, but a file we may overwrite
                if not (os.path.exists(target) and os.access(target, os.W_OK)):
                    raise
                target = None
            except OSError as exc:
                if exc.errno != errno.ENAMETOOLONG:  # the temporary name only: write in place
                    raise
                target = None
            else:
                out = cls(stream)
                out.attach(_Replacing(stream, tmp, target, path), path)
                return out
        stream = _open_text(path, "w")
    out = cls(stream)
    out.attach(_InPlace(stream, path), path)
    return out


__all__ = [
    "FORMATS",
    "STDOUT",
    "Output",
    "open_output",
    "output_class",
    "read_jsonl",
    "render",
]
