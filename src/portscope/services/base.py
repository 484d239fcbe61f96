"""The pure core of service detection: dialogs, their requests, and the facts they learn.

A protocol's conversation is a *dialog*: a generator that yields requests (:class:`Send`,
:class:`Recv`, :class:`StartTLS`, :class:`Reconnect`) and receives the runner's answers
(:class:`Reply`, :class:`TLSResult`). It never touches a socket or a clock: the engine
(``portscope.engine.services``) drives it over TCP, TLS or UDP, and tests drive it with
recorded bytes (:func:`run_scripted`). What the dialog learns goes into a :class:`Facts`,
which becomes the result model's :class:`~portscope.model.Service`.

Every :class:`Recv` is bounded: ``limit`` bytes at most, stopped as soon as ``complete``
says the reply is whole, and by a deadline the runner enforces, so a hostile server that
sends megabytes, trickles a byte a second or never answers costs a bounded amount of
memory and time, and whatever it sent before is kept as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from portscope.model import Service

BANNER_MAX = 2048
"""At most this many characters of a raw answer are kept as ``Service.banner``."""

DEFAULT_LIMIT = 16384
"""Default bound of one :class:`Recv` buffer."""

HEADER_VALUE_MAX = 512
LIST_MAX = 64


# --------------------------------------------------------------------------------------
# requests (dialog -> runner) and answers (runner -> dialog)


@dataclass(frozen=True, slots=True)
class Send:
    """Write *data* (TCP/TLS: to the stream; UDP: one datagram)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Recv:
    """Read until ``complete(buffer)`` is true, the peer closes, ``limit`` bytes arrived or
    the deadline passed (``timeout`` seconds for the whole reply; ``None``: the runner's
    default read timeout). UDP: one datagram; on silence the last datagram is resent
    ``retries`` times."""

    complete: Callable[[bytes], bool] | None = None
    limit: int = DEFAULT_LIMIT
    timeout: float | None = None
    retries: int = 0


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Switch this connection to TLS now (answered with a :class:`TLSResult`). A dialog
    yields it at the point a TLS ClientHello would go: at once for implicit TLS, after
    the protocol's ``STARTTLS`` exchange otherwise."""

    starttls: bool = True


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Close this connection and open a fresh one to the same port (same TLS-ness when
    the service is inside TLS). Answered with a :class:`Reply` saying whether it worked
    (``error`` set when not); nothing is read."""


Request = Send | Recv | StartTLS | Reconnect


@dataclass(frozen=True, slots=True)
class Reply:
    """What a :class:`Recv` got: the bytes (maybe empty) and why reading stopped."""

    data: bytes = b""
    eof: bool = False
    timed_out: bool = False
    truncated: bool = False
    error: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("latin-1")


@dataclass(frozen=True, slots=True)
class TLSResult:
    """Outcome of a :class:`StartTLS`: the TLS facts on success, else why not."""

    ok: bool
    facts: dict[str, Any] | None = None
    error: str | None = None


Response = Reply | TLSResult | None
Dialog = Generator[Request, Response, None]
Step = Generator[Request, Response, Any]


def send(data: bytes) -> Generator[Request, Response, None]:
    yield Send(data)


def recv(complete: Callable[[bytes], bool] | None = None, *, limit: int = DEFAULT_LIMIT,
         timeout: float | None = None, retries: int = 0) -> Generator[Request, Response, Reply]:
    r = yield Recv(complete, limit, timeout, retries)
    return r if isinstance(r, Reply) else Reply(error="no reply")


def exchange(data: bytes, complete: Callable[[bytes], bool] | None = None, *,
             limit: int = DEFAULT_LIMIT, timeout: float | None = None,
             retries: int = 0) -> Generator[Request, Response, Reply]:
    """Send *data*, then read one reply."""
    yield Send(data)
    return (yield from recv(complete, limit=limit, timeout=timeout, retries=retries))


def starttls() -> Generator[Request, Response, TLSResult]:
    r = yield StartTLS()
    return r if isinstance(r, TLSResult) else TLSResult(False, error="no TLS result")


def reconnect() -> Generator[Request, Response, bool]:
    r = yield Reconnect()
    return isinstance(r, Reply) and r.error is None


# --------------------------------------------------------------------------------------
# context and facts


@dataclass(frozen=True, slots=True)
class Context:
    """What a dialog knows about where it runs. ``first`` holds bytes the runner already
    read on this connection (a banner) before the dialog started."""

    address: str
    port: int
    transport: str = "tcp"  # "tcp" | "udp"
    tls: bool = False  # the connection is already inside TLS
    hostname: str | None = None
    intensity: int = 7
    snmp_community: str = "public"
    auth_checks: bool = True
    now: datetime = field(default_factory=lambda: datetime(1970, 1, 1, tzinfo=UTC))
    first: bytes = b""
    timeout: float = 5.0
    nonce: int = 0x5053  # per-connection random number (query ids ...), set by the runner

    @property
    def host_header(self) -> str:
        """The name for Host headers, SNI-less greetings and the like."""
        if self.hostname:
            return self.hostname
        return f"[{self.address}]" if ":" in self.address else self.address


@dataclass
class Facts:
    """What a dialog learned about one service (mutable while the dialog runs)."""

    name: str | None = None
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    cpe: list[str] = field(default_factory=list)
    banner: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tls: dict[str, Any] | None = None
    confidence: int = 0
    method: str = "probe"  # "banner" | "probe"
    tunnel: str | None = None
    raw: bytes = b""  # first bytes the peer sent on the dialog's connection (bounded)

    @property
    def identified(self) -> bool:
        return self.name is not None and self.confidence > 0

    def identify(self, name: str, confidence: int, method: str | None = None) -> None:
        """Name the service; a weaker guess never overrides a stronger one."""
        if self.name is None or confidence >= self.confidence:
            self.name = name
            self.confidence = confidence
            if method:
                self.method = method

    def saw(self, data: bytes, *, banner: bytes | None = None) -> None:
        """Record the first bytes the peer sent (evidence), once; *banner* is the part
        worth showing when not all of it is (an HTTP response's head)."""
        if data and not self.raw:
            self.raw = data[: BANNER_MAX * 2]
        shown = data if banner is None else banner
        if shown and self.banner is None:
            self.banner = printable_banner(shown).rstrip("\r\n") or None

    def set_product(self, product: str | None, version: str | None = None,
                    extrainfo: str | None = None, *, cpe: Iterable[str] = ()) -> None:
        if product:
            self.product = product
        if version:
            self.version = version
        if extrainfo:
            self.extrainfo = extrainfo
        for c in cpe:
            if c not in self.cpe:
                self.cpe.append(c)

    def merge(self, other: Facts) -> None:
        """Take what *other* learned where this one knows nothing (or less)."""
        if other.name and (self.name is None or other.confidence > self.confidence):
            self.name, self.confidence, self.method = other.name, other.confidence, other.method
        for attr in ("product", "version", "extrainfo", "banner", "tunnel"):
            if getattr(self, attr) is None and getattr(other, attr) is not None:
                setattr(self, attr, getattr(other, attr))
        for c in other.cpe:
            if c not in self.cpe:
                self.cpe.append(c)
        for k, v in other.extra.items():
            self.extra.setdefault(k, v)
        if other.tls:
            self.tls = {**(self.tls or {}), **other.tls}
        if not self.raw:
            self.raw = other.raw

    def to_service(self) -> Service:
        name = self.name or "unknown"
        if name == "http" and self.tunnel == "ssl":
            name = "https"
        return Service(
            name=name, product=self.product, version=self.version, extrainfo=self.extrainfo,
            cpe=tuple(self.cpe), banner=self.banner, tls=dict(self.tls) if self.tls else None,
            extra={k: v for k, v in self.extra.items() if not k.startswith("_")},
            method=self.method if self.identified else "port-table",
            confidence=max(0, min(10, self.confidence)), tunnel=self.tunnel,
        )


# --------------------------------------------------------------------------------------
# helpers for parsers


_UNPRINTABLE = re.compile(r"[^\x20-\x7e\t\n\r]")


def printable_banner(data: bytes, limit: int = BANNER_MAX) -> str:
    """Printable text of raw bytes: ASCII kept, anything else as ``\\xNN``; bounded."""
    text = data[: limit * 4].decode("latin-1")
    out = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return out[:limit]


def clean(text: str | bytes | None, limit: int = HEADER_VALUE_MAX) -> str:
    """A short printable one-line string from network text."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:limit]


def lines_complete(data: bytes) -> bool:
    return data.endswith(b"\n")


def line_complete(data: bytes) -> bool:
    return b"\n" in data


def bounded_list(items: Iterable[str], limit: int = LIST_MAX) -> list[str]:
    out: list[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
            if len(out) >= limit:
                break
    return out


# --------------------------------------------------------------------------------------
# driving a dialog without a network (tests, replays)


ScriptItem = bytes | Reply | TLSResult | None


def run_scripted(dialog: Dialog, answers: Iterable[ScriptItem]) -> list[Request]:
    """Drive *dialog* with canned answers, one per request that expects one (Recv,
    StartTLS, Reconnect); bytes become a complete :class:`Reply`. Sends take no answer.
    When the answers run out, every further read times out. Returns the requests made."""
    it = iter(answers)
    made: list[Request] = []
    response: Response = None
    try:
        req = dialog.send(None)
        while True:
            made.append(req)
            if len(made) > 1000:
                raise RuntimeError("dialog does not end")
            if isinstance(req, Send):
                response = None
            else:
                item = next(it, _EXHAUSTED)
                if item is _EXHAUSTED:
                    if isinstance(req, StartTLS):
                        response = TLSResult(False, error="handshake failed")
                    elif isinstance(req, Reconnect):
                        response = Reply(error="connection refused")
                    else:
                        response = Reply(timed_out=True)
                elif isinstance(item, bytes):
                    response = Reply(item)
                else:
                    response = item
            req = dialog.send(response)
    except StopIteration:
        pass
    return made


_EXHAUSTED: Any = object()


# --------------------------------------------------------------------------------------
# protocol modules


DialogFactory = Callable[[Context, Facts], Dialog]


@dataclass(frozen=True, slots=True)
class ServiceProtocol:
    """One protocol module's registration (``services/__init__.py`` lists them).

    * ``dialog``: the TCP conversation (also run inside TLS); ``udp``: the UDP one.
    * ``server_first``: the server greets first; ``recognize(first_bytes)`` then says how
      sure (0-10) it is that a greeting is this protocol.
    * ``rarity`` (1-9): client-first probes are tried on ports where nothing else is known
      at ``--version-intensity`` >= rarity (like nmap's rarity); hinted ports always try it.
    * ``hints``: port-table service names meaning this protocol; ``tls_hints`` those
      meaning it inside implicit TLS (``https``, ``imaps`` ...).
    * ``starttls``: a dialog that brings a fresh connection to the point where the
      ClientHello goes (``EHLO``/``STARTTLS`` ...) and then yields :class:`StartTLS`; used
      to probe TLS versions behind STARTTLS.
    """

    name: str
    dialog: DialogFactory | None = None
    udp: DialogFactory | None = None
    server_first: bool = False
    recognize: Callable[[bytes], int] | None = None
    rarity: int = 5
    udp_rarity: int = 5
    hints: tuple[str, ...] = ()
    tls_hints: tuple[str, ...] = ()
    udp_hints: tuple[str, ...] = ()
    starttls: DialogFactory | None = None
