"""Helpers for the line-based protocols (FTP, SMTP, POP3, IMAP): complete replies and
their codes, with every buffer bounded by the caller's ``Recv.limit``."""

from __future__ import annotations

import re
from collections.abc import Callable

_CODE_LINE = re.compile(rb"^(\d{3})([ -])(.*)$")


def code_reply_complete(data: bytes) -> bool:
    """An FTP/SMTP reply is complete at the first ``NNN <text>`` line (``NNN-`` lines
    continue it); garbage counts as complete at the first line end."""
    for raw in data.split(b"\n")[:-1]:
        line = raw.rstrip(b"\r")
        m = _CODE_LINE.match(line)
        if m is None:
            if not line[:1].isdigit() and not line.startswith(b" "):
                return True
            continue
        if m.group(2) == b" ":
            return True
    return False


def parse_code_reply(data: bytes) -> tuple[int | None, list[str]]:
    """``(code, lines of text)`` of an FTP/SMTP reply (code None if there is none)."""
    code: int | None = None
    lines: list[str] = []
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        m = _CODE_LINE.match(line)
        if m is not None:
            if code is None:
                code = int(m.group(1))
            lines.append(m.group(3).decode("latin-1"))
            if m.group(2) == b" ":
                break
        else:
            lines.append(line.decode("latin-1"))
    return code, lines


def tagged_complete(tag: bytes) -> Callable[[bytes], bool]:
    """IMAP: complete at the tagged response line (or a BYE)."""

    def complete(data: bytes) -> bool:
        for raw in data.split(b"\n")[:-1]:
            if raw.startswith(tag + b" ") or raw.startswith(b"* BYE"):
                return True
        return False

    return complete


def pop3_multiline_complete(data: bytes) -> bool:
    """POP3: a ``-ERR`` line, or ``+OK`` ... terminated by a line with a single dot."""
    if data.startswith(b"-") and b"\n" in data:
        return True
    return data.endswith(b"\r\n.\r\n") or data.endswith(b"\n.\n") or data == b".\r\n"


def first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
