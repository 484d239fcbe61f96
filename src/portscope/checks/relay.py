"""The SMTP open-relay test as pure dialogue logic (no sockets, no clock).

The engine (:mod:`portscope.engine.relay`) connects and shuttles bytes::

    d = RelayDialogue("198.18.0.2", port=25, domain="example.com")
    while not d.done:
        data = sock.recv(4096)              # b"" when the server closed
        for command in d.receive(data) if data else d.closed():
            sock.sendall(command)
    fact = d.result()                       # the ``smtp_relay`` service fact

The test list is nmap's ``smtp-open-relay`` (16 MAIL FROM/RCPT TO address forms:
empty sender, the server's name and address literal, percent hack, quoted local parts,
double @, source routes, UUCP bang paths). Each test is ``MAIL FROM`` + ``RCPT TO`` +
``RSET``; a recipient accepted with 250/251 counts as relayed. No message is ever sent
unless the user asks for confirmation with a mailbox they own: then, when a recipient
was accepted, one message goes to that mailbox (``DATA``) and a 250 after it confirms
the relay. Any 530 (authentication or STARTTLS required) stops the test: the server does
not relay for strangers. Servers that accept every recipient and bounce later (qmail)
look like open relays at RCPT level; the finding says so in its confidence note.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from enum import Enum
from typing import Any

MAX_LINE = 4096
MAX_TRANSCRIPT = 64 * 1024
_REPLY = re.compile(r"^(\d{3})([ -]?)(.*)$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")
_DOMAIN_REJECT = re.compile(r"(?:\b4\.1\.2\b|\b5\.1\.2\b|domain not found|"
                            r"unknown domain|host or domain name not found)", re.IGNORECASE)

ACCEPT_CODES = (250, 251)
AUTH_REQUIRED = 530


@dataclass(frozen=True, slots=True)
class RelayPair:
    mail_from: str  # the text inside MAIL FROM:<...>
    rcpt_to: str  # the text inside RCPT TO:<...>


def address_literal(ip: str) -> str:
    """``[198.18.0.2]`` / ``[IPv6:2001:db8::2]`` (RFC 5321 4.1.3)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    return f"[IPv6:{addr}]" if addr.version == 6 else f"[{addr}]"


def relay_pairs(ip: str, domain: str, server_name: str | None = None) -> list[RelayPair]:
    """nmap's 16 relay tests for server *ip* (named *server_name*), relaying to *domain*."""
    lit = address_literal(ip)
    s = server_name or lit
    d = domain
    src = f"antispam@{lit}"
    return [
        RelayPair("", f"relaytest@{d}"),
        RelayPair(f"antispam@{d}", f"relaytest@{d}"),
        RelayPair(f"antispam@{s}", f"relaytest@{d}"),
        RelayPair(src, f"relaytest@{d}"),
        RelayPair(src, f"relaytest%{d}@{lit}"),
        RelayPair(src, f"relaytest%{d}@{s}"),
        RelayPair(src, f'"relaytest@{d}"'),
        RelayPair(src, f'"relaytest%{d}"'),
        RelayPair(src, f"relaytest@{d}@{lit}"),
        RelayPair(src, f'"relaytest@{d}"@{lit}'),
        RelayPair(src, f"relaytest@{d}@{s}"),
        RelayPair(src, f"@{lit}:relaytest@{d}"),
        RelayPair(src, f"@{s}:relaytest@{d}"),
        RelayPair(src, f"{d}!relaytest"),
        RelayPair(src, f"{d}!relaytest@{lit}"),
        RelayPair(src, f"{d}!relaytest@{s}"),
    ]


@dataclass(slots=True)
class Reply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(slots=True)
class TestOutcome:
    pair: RelayPair
    mail_code: int | None = None
    rcpt_code: int | None = None
    rcpt_text: str = ""

    @property
    def accepted(self) -> bool:
        return self.rcpt_code in ACCEPT_CODES

    @property
    def domain_rejected(self) -> bool:
        return (self.rcpt_code is not None and self.rcpt_code not in ACCEPT_CODES
                and bool(_DOMAIN_REJECT.search(self.rcpt_text)))


class State(Enum):
    GREETING = "greeting"
    EHLO = "ehlo"
    HELO = "helo"
    MAIL = "mail"
    RCPT = "rcpt"
    RSET = "rset"
    CONFIRM_MAIL = "confirm-mail"
    CONFIRM_RCPT = "confirm-rcpt"
    CONFIRM_DATA = "confirm-data"
    CONFIRM_BODY = "confirm-body"
    QUIT = "quit"
    DONE = "done"


@dataclass
class RelayDialogue:
    """One SMTP session testing relaying; see the module docstring."""

    ip: str
    port: int = 25
    domain: str = "example.com"
    helo: str = "portscope.invalid"
    confirm_mailbox: str | None = None
    now: datetime | None = None  # Date header of the confirmation message
    token: str = "portscope"  # marks the confirmation message
    tests: Sequence[RelayPair] | None = None

    state: State = field(default=State.GREETING, init=False)
    server_name: str | None = field(default=None, init=False)
    outcomes: list[TestOutcome] = field(default_factory=list, init=False)
    auth_required: bool = field(default=False, init=False)
    confirmed: bool | None = field(default=None, init=False)
    error: str | None = field(default=None, init=False)
    ehlo_keywords: list[str] = field(default_factory=list, init=False)
    _buf: bytes = field(default=b"", init=False)
    _lines: list[str] = field(default_factory=list, init=False)
    _transcript: list[str] = field(default_factory=list, init=False)
    _transcript_size: int = field(default=0, init=False)
    _pending: list[RelayPair] = field(default_factory=list, init=False)
    _current: TestOutcome | None = field(default=None, init=False)

    # -- the engine's interface -------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def receive(self, data: bytes) -> list[bytes]:
        """Bytes from the server -> commands to send (CRLF-terminated), in order."""
        if self.done:
            return []
        self._buf += data
        out: list[bytes] = []
        while not self.done:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self._fail("reply line longer than 4096 bytes")
                break
            raw, self._buf = self._buf[:nl], self._buf[nl + 1:]
            if len(raw) > MAX_LINE:
                self._fail("reply line longer than 4096 bytes")
                break
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            self._log("S", line)
            m = _REPLY.match(line)
            if m is None:
                self._fail(f"not an SMTP reply: {line[:80]!r}")
                break
            self._lines.append(m.group(3))
            if m.group(2) == "-":
                continue
            reply = Reply(int(m.group(1)), self._lines)
            self._lines = []
            out.extend(self._on_reply(reply))
        return out

    def closed(self) -> list[bytes]:
        """The server closed the connection."""
        if not self.done:
            if self.state is not State.QUIT:
                self._fail(f"connection closed by the server ({self.state.value})")
            self.state = State.DONE
        return []

    def abort(self, message: str) -> None:
        """The engine gave up (cannot connect, connection error): stop with *message*."""
        self._fail(message)

    def timeout(self) -> list[bytes]:
        """No reply in time: stop (the engine closes the connection)."""
        if not self.done:
            self._fail(f"no reply in time ({self.state.value})")
        return []

    # -- the result --------------------------------------------------------------------------

    @property
    def accepted(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.accepted]

    @property
    def verdict(self) -> str:
        """``open`` | ``refused`` | ``auth-required`` | ``inconclusive``."""
        if self.accepted:
            return "open"
        if self.auth_required:
            return "auth-required"
        done = [o for o in self.outcomes if o.rcpt_code is not None or o.mail_code is not None]
        if not done:
            return "inconclusive"
        refused = [o for o in done if o.rcpt_code is not None]
        if refused and all(o.domain_rejected for o in refused):
            return "inconclusive"
        return "refused"

    def transcript(self) -> str:
        return "\n".join(self._transcript)

    def result(self) -> dict[str, Any]:
        """The ``smtp_relay`` service fact (docs/service-facts.md)."""
        error = self.error
        if self.verdict == "inconclusive" and error is None and self.outcomes:
            error = (f"every recipient in {self.domain} was refused as an unknown domain: "
                     f"use a relay-test domain the server can resolve")
        return {
            "verdict": self.verdict,
            "tests": len(self._tests()),
            "completed": len([o for o in self.outcomes if o.rcpt_code is not None]),
            "accepted": len(self.accepted),
            "accepted_tests": [{"mail_from": o.pair.mail_from, "rcpt_to": o.pair.rcpt_to,
                                "reply": f"{o.rcpt_code} {o.rcpt_text}".strip()}
                               for o in self.accepted],
            "confirmed": self.confirmed,
            "auth_required": self.auth_required,
            "domain": self.domain,
            "server_name": self.server_name,
            "ehlo": list(self.ehlo_keywords),
            "error": error,
            "transcript": self.transcript(),
        }

    # -- internals ----------------------------------------------------------------------------

    def _tests(self) -> Sequence[RelayPair]:
        if self.tests is not None:
            return self.tests
        return relay_pairs(self.ip, self.domain, self.server_name)

    def _log(self, who: str, line: str) -> None:
        if self._transcript_size > MAX_TRANSCRIPT:
            return
        text = f"{who}: {line}"
        self._transcript_size += len(text) + 1
        if self._transcript_size > MAX_TRANSCRIPT:
            text = "[... transcript truncated]"
        self._transcript.append(text)

    def _send(self, line: str, *, log: str | None = None) -> bytes:
        self._log("C", log if log is not None else line)
        return line.encode("utf-8", "replace") + b"\r\n"

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.state = State.DONE

    def _quit(self) -> list[bytes]:
        self.state = State.QUIT
        return [self._send("QUIT")]

    def _name_from(self, text: str) -> None:
        if self.server_name:
            return
        first = text.split()[0] if text.split() else ""
        if _HOSTNAME.match(first) and "." in first:
            self.server_name = first

    def _next_test(self) -> list[bytes]:
        if self._pending:
            self._current = TestOutcome(self._pending.pop(0))
            self.outcomes.append(self._current)
            self.state = State.MAIL
            return [self._send(f"MAIL FROM:<{self._current.pair.mail_from}>")]
        if self.confirm_mailbox and self.accepted and self.confirmed is None:
            self.state = State.CONFIRM_MAIL
            return [self._send(f"MAIL FROM:<antispam@{address_literal(self.ip)}>")]
        return self._quit()

    def _start_tests(self) -> list[bytes]:
        self._pending = list(self._tests())
        return self._next_test()

    def _message(self) -> list[bytes]:
        date = format_datetime(self.now) if self.now is not None else None
        lit = address_literal(self.ip)
        headers = [f"From: portscope relay test <antispam@{lit}>",
                   f"To: <{self.confirm_mailbox}>",
                   f"Subject: portscope open relay test {self.token}",
                   f"Message-ID: <{self.token}@portscope.invalid>"]
        if date:
            headers.append(f"Date: {date}")
        body = ["",
                f"portscope sent this message through the mail server {self.ip} port "
                f"{self.port}",
                "to confirm that it relays mail for outside domains (an open relay).",
                "If you received it, the server is an open relay: restrict relaying.",
                "."]
        self._log("C", f"[message to {self.confirm_mailbox}, {len(headers)} headers]")
        self._log("C", ".")
        return [("\r\n".join(headers + body)).encode("utf-8") + b"\r\n"]

    def _on_reply(self, r: Reply) -> list[bytes]:
        st = self.state
        if r.code == 421 and st is not State.QUIT:
            self._fail(f"server closing the connection: {r.text[:120]}")
            return []
        if st is State.GREETING:
            if r.code != 220:
                self._fail(f"greeting {r.code}: {r.text[:120]}")
                return self._quit_after_fail()
            self._name_from(r.text)
            self.state = State.EHLO
            return [self._send(f"EHLO {self.helo}")]
        if st is State.EHLO:
            if r.code == 250:
                self._name_from(r.lines[0] if r.lines else "")
                self.ehlo_keywords = [ln.strip() for ln in r.lines[1:]][:64]
                return self._start_tests()
            self.state = State.HELO
            return [self._send(f"HELO {self.helo}")]
        if st is State.HELO:
            if r.code == 250:
                self._name_from(r.lines[0] if r.lines else "")
                return self._start_tests()
            self._fail(f"HELO refused: {r.code} {r.text[:120]}")
            return self._quit_after_fail()
        if st is State.MAIL:
            assert self._current is not None
            self._current.mail_code = r.code
            if r.code == AUTH_REQUIRED:
                self.auth_required = True
                return self._quit()
            if r.code == 250:
                self.state = State.RCPT
                return [self._send(f"RCPT TO:<{self._current.pair.rcpt_to}>")]
            self.state = State.RSET
            return [self._send("RSET")]
        if st is State.RCPT:
            assert self._current is not None
            self._current.rcpt_code = r.code
            self._current.rcpt_text = r.text[:300]
            if r.code == AUTH_REQUIRED:
                self.auth_required = True
                return self._quit()
            self.state = State.RSET
            return [self._send("RSET")]
        if st is State.RSET:
            return self._next_test()
        if st is State.CONFIRM_MAIL:
            if r.code != 250:
                self.confirmed = False
                return self._quit()
            self.state = State.CONFIRM_RCPT
            return [self._send(f"RCPT TO:<{self.confirm_mailbox}>")]
        if st is State.CONFIRM_RCPT:
            if r.code not in ACCEPT_CODES:
                self.confirmed = False
                return self._quit()
            self.state = State.CONFIRM_DATA
            return [self._send("DATA")]
        if st is State.CONFIRM_DATA:
            if r.code != 354:
                self.confirmed = False
                return self._quit()
            self.state = State.CONFIRM_BODY
            return self._message()
        if st is State.CONFIRM_BODY:
            self.confirmed = r.code == 250
            return self._quit()
        if st is State.QUIT:
            self.state = State.DONE
            return []
        return []

    def _quit_after_fail(self) -> list[bytes]:
        # _fail() set DONE; still say goodbye politely
        self.state = State.QUIT
        out = [self._send("QUIT")]
        self.state = State.DONE
        return out


__all__ = ["RelayDialogue", "RelayPair", "address_literal", "relay_pairs"]
