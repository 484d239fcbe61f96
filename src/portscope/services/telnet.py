"""Telnet (RFC 854/855): the server's option negotiation and its login banner. We refuse
every option the server asks us to do and accept its echo / go-ahead suppression, which
is what it takes for a login prompt to appear."""

from __future__ import annotations

import re
from collections.abc import Callable

from portscope.services import rules
from portscope.services.base import (
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    bounded_list,
    printable_banner,
    recv,
    send,
)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
VERBS = {WILL: "WILL", WONT: "WONT", DO: "DO", DONT: "DONT"}
OPTIONS = {0: "BINARY", 1: "ECHO", 3: "SUPPRESS-GO-AHEAD", 5: "STATUS", 6: "TIMING-MARK",
           24: "TERMINAL-TYPE", 31: "NAWS", 32: "TSPEED", 33: "LFLOW", 34: "LINEMODE",
           35: "X-DISPLAY-LOCATION", 36: "ENVIRON", 37: "AUTHENTICATION", 38: "ENCRYPT",
           39: "NEW-ENVIRON", 44: "COM-PORT"}
ACCEPTED = {1, 3}  # server may WILL ECHO / SUPPRESS-GO-AHEAD

_PROMPT = re.compile(r"(login|username|user name|user|password)\s*:\s*$", re.IGNORECASE)


def parse(data: bytes) -> tuple[list[tuple[int, int]], bytes, bool]:
    """``(negotiations (verb, option), text without IAC sequences, cut short)``."""
    negotiations: list[tuple[int, int]] = []
    text = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b != IAC:
            text.append(b)
            i += 1
            continue
        if i + 1 >= n:
            return negotiations, bytes(text), True
        cmd = data[i + 1]
        if cmd in VERBS:
            if i + 2 >= n:
                return negotiations, bytes(text), True
            negotiations.append((cmd, data[i + 2]))
            i += 3
        elif cmd == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            if end < 0:
                return negotiations, bytes(text), True
            i = end + 2
        elif cmd == IAC:
            text.append(IAC)
            i += 2
        else:
            i += 2
    return negotiations, bytes(text), False


def answer(negotiations: list[tuple[int, int]]) -> bytes:
    out = bytearray()
    for verb, opt in negotiations:
        if verb == DO:
            out += bytes([IAC, WONT, opt])
        elif verb == WILL:
            out += bytes([IAC, DO if opt in ACCEPTED else DONT, opt])
    return bytes(out)


def recognize(data: bytes) -> int:
    if len(data) >= 3 and data[0] == IAC and data[1] in VERBS:
        return 9
    return 0


def _prompt(text: bytes) -> bool:
    return bool(_PROMPT.search(text.decode("latin-1").rstrip("\0").rstrip()))


def _prompt_after(text: bytes) -> Callable[[bytes], bool]:
    return lambda d: _prompt(text + parse(d)[1])


def dialog(ctx: Context, facts: Facts) -> Dialog:
    data = ctx.first
    seen: list[str] = []
    text = b""
    answered = 0
    for _ in range(6):
        if not data:
            r = yield from recv(lambda d: not parse(d)[2], limit=8192)
            if not r.data:
                break
            data = r.data
        if not facts.raw:
            facts.saw(data)
        negotiations, chunk, _cut = parse(data)
        text += chunk
        seen += [f"{VERBS[v]} {OPTIONS.get(o, str(o))}" for v, o in negotiations]
        data = b""
        if _prompt(text) or len(text) > 4096:
            break
        reply = answer(negotiations)
        if reply:
            answered += 1
            yield from send(reply)
        elif not negotiations and text.strip():
            # plain text without a prompt yet: wait a little for the rest
            r = yield from recv(_prompt_after(text), limit=8192,
                                timeout=min(ctx.timeout, 2.0))
            data = r.data
            if not data:
                break
    if not seen and not text:
        return
    if seen:
        facts.identify("telnet", 9, "banner")
        facts.extra["options"] = bounded_list(seen)
    text_clean = printable_banner(text.replace(b"\0", b""))
    if text_clean.strip():
        facts.banner = text_clean
    facts.extra["login_prompt"] = _prompt(text)
    if facts.extra["login_prompt"] and not seen:
        facts.identify("telnet", 7, "banner")
    rules.match("telnet", text.decode("latin-1"), facts,
                service="telnet" if facts.name == "telnet" else None)


PROTOCOL = ServiceProtocol(name="telnet", dialog=dialog, server_first=True,
                           recognize=recognize, hints=("telnet",))
