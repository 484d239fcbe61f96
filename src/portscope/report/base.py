"""The output-format interface: one :class:`Output` subclass per format.

An output is fed the life of a scan as it happens::

    out.start(run)                  # header known, no hosts yet
    out.port(address, result)       # each port result as soon as it is decided
    out.host(host)                  # each host when it is finished
    out.finish(run)                 # the final run (also on Ctrl-C, run.complete=False)
    out.close()

Streaming formats (JSON Lines) write at every step; document formats (JSON, XML,
normal text) write the whole document from the final run in :meth:`Output.finish`,
because the final run is the authoritative one (findings, for instance, are computed
from the whole run after the hosts are done).

Outputs never do I/O except through the text stream they are given. Write errors
become :class:`~portscope.errors.OutputFileError`.
"""

from __future__ import annotations

import abc
import codecs
import functools
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Protocol, TextIO

from portscope.errors import writing
from portscope.model import Host, PortResult, ScanRun


class Sink(Protocol):
    """Where the stream of an :class:`Output` opened by ``open_output`` goes in the end."""

    def close(self, *, commit: bool) -> None: ...


class Output(abc.ABC):
    """One output destination writing one format as text to a stream."""

    name: ClassVar[str]
    """Registry name: ``json``, ``jsonl``, ``xml``, ``normal`` ..."""

    streaming: ClassVar[bool] = False
    """True when the format writes as results arrive (a file is then written in place);
    False when it writes one document in :meth:`finish` (a file is then replaced
    atomically, so a crash never leaves half a document)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.label: str = str(getattr(stream, "name", "") or "<stream>")
        """How error messages name the destination (the path for ``open_output``)."""
        self.finished = False
        """Set once :meth:`finish` has returned normally."""
        self._sink: Sink | None = None
        self._closed = False
        encoding = getattr(stream, "encoding", None)
        try:
            self.unicode_ok: bool = encoding is None or codecs.lookup(encoding).name.startswith(
                "utf-")
        except (LookupError, TypeError):
            self.unicode_ok = False
        """Whether the stream can take any Unicode text (else formats fall back to ASCII)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Mark the output finished when a subclass's finish() returns normally, so that
        # close() knows whether the document is whole (and may replace the target file).
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("finish")
        if own is None or getattr(own, "__isabstractmethod__", False):
            return
        original: Callable[[Output, ScanRun], None] = own

        @functools.wraps(original)
        def finish(self: Output, run: ScanRun) -> None:
            try:
                original(self, run)
                self.flush()
            except BaseException:
                self.finished = False  # also when an overriding finish() failed after super()
                raise
            self.finished = True

        setattr(cls, "finish", finish)  # noqa: B010

    # -- the events --------------------------------------------------------------------

    def start(self, run: ScanRun) -> None:  # noqa: B027 - optional hook
        """The run header is known, no hosts yet."""

    def port(self, address: str, result: PortResult) -> None:  # noqa: B027 - optional hook
        """A port result was just decided (streamed)."""

    def host(self, host: Host) -> None:  # noqa: B027 - optional hook
        """A host is finished."""

    @abc.abstractmethod
    def finish(self, run: ScanRun) -> None:
        """The final run. Also called on Ctrl-C with ``run.complete=False``: it must still
        produce a valid document."""

    # -- writing -----------------------------------------------------------------------

    def write(self, text: str) -> None:
        with writing(self.label):
            self.stream.write(text)

    def flush(self) -> None:
        with writing(self.label):
            self.stream.flush()

    def close(self) -> None:
        """Flush, and for an output from ``open_output`` close the file: a document
        format's file is put in place only if :meth:`finish` completed. Never closes a
        stream the caller passed in. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.stream.closed:
                self.flush()
        finally:
            if self._sink is not None:
                self._sink.close(commit=self.finished)

    def attach(self, sink: Sink, label: str) -> None:
        """Used by ``open_output``: *sink* owns the stream and is closed by :meth:`close`."""
        self._sink = sink
        self.label = label

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
