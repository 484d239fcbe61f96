"""The SMTP relay dialogue, driven with scripted server replies (no sockets)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from portscope.checks.relay import RelayDialogue, address_literal, relay_pairs

Server = Callable[[str], bytes | None]  # command line -> reply bytes (None: close)


def drive(d: RelayDialogue, greeting: bytes, server: Server, limit: int = 400) -> list[str]:
    """Run the dialogue against *server*; returns the commands sent."""
    sent: list[str] = []
    pending = d.receive(greeting)
    steps = 0
    while pending and not d.done and steps < limit:
        steps += 1
        cmd = pending.pop(0)
        line = cmd.decode().split("\r\n")[0]
        sent.append(line)
        reply = server(cmd.decode())
        if reply is None:
            pending.extend(d.closed())
            break
        pending.extend(d.receive(reply))
    return sent


def postfix(relay: bool, auth: bool = False) -> Server:
    def reply(cmd: str) -> bytes:
        verb = cmd.split(" ", 1)[0].split(":")[0].upper()
        if verb == "EHLO":
            return b"250-mx.example.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
        if verb == "MAIL":
            return b"530 5.7.0 Authentication required\r\n" if auth else b"250 2.1.0 Ok\r\n"
        if verb == "RCPT":
            if relay and "relaytest@example.com>" in cmd and "%" not in cmd:
                return b"250 2.1.5 Ok\r\n"
            return b"554 5.7.1 <x>: Relay access denied\r\n"
        if verb == "RSET":
            return b"250 2.0.0 Ok\r\n"
        if verb == "QUIT":
            return b"221 2.0.0 Bye\r\n"
        return b"502 5.5.2 Error: command not recognized\r\n"
    return reply


GREETING = b"220 mx.example.test ESMTP Postfix (Debian/GNU)\r\n"


def test_relay_pairs_follow_nmap() -> None:
    pairs = relay_pairs("198.18.0.2", "example.com", "mx.example.test")
    assert len(pairs) == 16
    assert pairs[0].mail_from == "" and pairs[0].rcpt_to == "relaytest@example.com"
    assert pairs[4].rcpt_to == "relaytest%example.com@[198.18.0.2]"
    assert pairs[11].rcpt_to == "@[198.18.0.2]:relaytest@example.com"
    assert pairs[13].rcpt_to == "example.com!relaytest"
    assert address_literal("2001:db8::2") == "[IPv6:2001:db8::2]"


def test_open_relay() -> None:
    d = RelayDialogue("198.18.0.2", domain="example.com")
    sent = drive(d, GREETING, postfix(relay=True))
    assert d.done and d.verdict == "open"
    r = d.result()
    assert r["accepted"] == 6 and r["tests"] == 16 and r["completed"] == 16
    assert r["server_name"] == "mx.example.test"
    assert sent[0] == "EHLO portscope.invalid" and sent[-1] == "QUIT"
    assert "DATA" not in sent  # RCPT-level: never sends a message by default
    assert "C: RCPT TO:<relaytest@example.com>" in r["transcript"]
    assert "S: 250 2.1.5 Ok" in r["transcript"]
    assert r["confirmed"] is None


def test_correctly_configured_server_refuses() -> None:
    d = RelayDialogue("198.18.0.2")
    drive(d, GREETING, postfix(relay=False))
    assert d.verdict == "refused" and d.result()["accepted"] == 0
    assert d.result()["completed"] == 16


def test_530_means_authentication_required_and_stops() -> None:
    d = RelayDialogue("198.18.0.2")
    sent = drive(d, GREETING, postfix(relay=True, auth=True))
    assert d.verdict == "auth-required"
    assert sent == ["EHLO portscope.invalid", "MAIL FROM:<>", "QUIT"]


def test_accept_everything_server_is_open_at_rcpt_level() -> None:
    def qmail(cmd: str) -> bytes:
        return b"221 bye\r\n" if cmd.startswith("QUIT") else b"250 ok\r\n"

    d = RelayDialogue("198.18.0.2")
    drive(d, b"220 mx ESMTP\r\n", qmail)
    assert d.verdict == "open" and d.result()["accepted"] == 16


def test_confirmation_sends_one_message_to_the_users_mailbox() -> None:
    received: list[str] = []

    def server(cmd: str) -> bytes:
        received.append(cmd)
        if cmd.startswith("DATA"):
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if cmd.startswith("From:"):
            return b"250 2.0.0 Ok: queued as 1234\r\n"
        return postfix(relay=True)(cmd) if not cmd.startswith("RCPT TO:<me@") else \
            b"250 2.1.5 Ok\r\n"

    d = RelayDialogue("198.18.0.2", confirm_mailbox="me@mine.example",
                      now=datetime(2025, 6, 2, tzinfo=UTC), token="tok123")
    drive(d, GREETING, server)
    assert d.confirmed is True and d.result()["confirmed"] is True
    assert sum(1 for c in received if c.startswith("DATA")) == 1
    message = next(c for c in received if c.startswith("From:"))
    assert "To: <me@mine.example>" in message and "tok123" in message
    assert message.endswith("\r\n.\r\n")
    assert "Date: Mon, 02 Jun 2025" in message


def test_no_confirmation_when_nothing_was_accepted() -> None:
    d = RelayDialogue("198.18.0.2", confirm_mailbox="me@mine.example")
    sent = drive(d, GREETING, postfix(relay=False))
    assert "DATA" not in sent and d.confirmed is None


def test_ehlo_refused_falls_back_to_helo_and_multiline_replies() -> None:
    def old(cmd: str) -> bytes:
        if cmd.startswith("EHLO"):
            return b"500 unrecognized\r\n"
        if cmd.startswith("HELO"):
            return b"250 old.example.test\r\n"
        return postfix(relay=False)(cmd)

    d = RelayDialogue("198.18.0.2")
    sent = drive(d, b"220-old.example.test\r\n220-welcome\r\n220 ready\r\n", old)
    assert sent[:2] == ["EHLO portscope.invalid", "HELO portscope.invalid"]
    assert d.verdict == "refused" and d.server_name == "old.example.test"


def test_replies_split_anywhere_are_reassembled() -> None:
    d = RelayDialogue("198.18.0.2")
    out: list[bytes] = []
    for b in GREETING:
        out += d.receive(bytes([b]))
    assert out == [b"EHLO portscope.invalid\r\n"]


@pytest.mark.parametrize(("greeting", "error"), [
    (b"HTTP/1.1 400 Bad Request\r\n", "not an SMTP reply"),
    (b"220" + b"x" * 5000, "longer than 4096"),
    (b"554 5.7.1 go away\r\n", "greeting 554"),
    (b"421 4.3.2 shutting down\r\n", "closing the connection"),
])
def test_hostile_or_unwilling_servers_end_cleanly(greeting: bytes, error: str) -> None:
    d = RelayDialogue("198.18.0.2")
    d.receive(greeting)
    assert d.done and d.verdict == "inconclusive"
    assert error in (d.result()["error"] or "")


def test_closed_and_timeout_mid_dialogue() -> None:
    d = RelayDialogue("198.18.0.2")
    d.receive(GREETING)
    d.closed()
    assert d.done and "closed by the server" in d.result()["error"]
    t = RelayDialogue("198.18.0.2")
    t.receive(GREETING)
    t.timeout()
    assert t.done and t.verdict == "inconclusive" and "no reply in time" in t.result()["error"]


def test_unknown_test_domain_is_inconclusive_not_a_pass() -> None:
    def picky(cmd: str) -> bytes:
        if cmd.startswith("RCPT"):
            return b"450 4.1.2 <relaytest@example.com>: Recipient address rejected: " \
                   b"Domain not found\r\n"
        return postfix(relay=False)(cmd)

    d = RelayDialogue("198.18.0.2")
    drive(d, GREETING, picky)
    assert d.verdict == "inconclusive"
    assert "relay-test domain" in d.result()["error"]


def test_transcript_is_bounded() -> None:
    def chatty(cmd: str) -> bytes:
        if cmd.startswith("QUIT"):
            return b"221 bye\r\n"
        return b"".join(b"250-" + b"y" * 1000 + b"\r\n" for _ in range(20)) + b"250 ok\r\n"

    d = RelayDialogue("198.18.0.2")
    drive(d, GREETING, chatty)
    assert len(d.transcript()) < 70_000
    assert "[... transcript truncated]" in d.transcript()
