"""Runs the SMTP open-relay test (:class:`portscope.checks.relay.RelayDialogue`) against the
mail ports of a run and stores each verdict as the service fact ``smtp_relay``.

Connections go only to the addresses and ports the run found open. Each session has a
per-reply timeout and an overall deadline; a slow, silent or hostile server ends its own
session with an ``inconclusive`` verdict, never with an exception.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any

from portscope.checks.config import RelayOptions
from portscope.checks.relay import RelayDialogue
from portscope.model import Host, PortResult, PortState, Protocol, ScanRun, Service, utcnow

SMTP_NAMES = frozenset({"smtp", "submission", "smtps", "submissions"})
IMPLICIT_TLS_PORTS = frozenset({465})
SESSION_DEADLINE = 120.0  # seconds for one whole session
MAX_WORKERS = 8

ResultCallback = Callable[[str, PortResult, dict[str, Any]], None]


def is_mail_port(p: PortResult, relay: RelayOptions) -> bool:
    if p.protocol is not Protocol.TCP or p.state is not PortState.OPEN:
        return False
    svc = p.service
    if svc is not None and svc.detected:
        return svc.name.lower() in SMTP_NAMES
    return p.port in relay.ports


def relay_targets(run: ScanRun, relay: RelayOptions) -> list[tuple[Host, PortResult]]:
    return [(h, p) for h in run.hosts for p in h.ports if is_mail_port(p, relay)]


def relay_session(address: str, port: int, relay: RelayOptions, *, use_tls: bool = False,
                  now: datetime | None = None, deadline: float = SESSION_DEADLINE
                  ) -> dict[str, Any]:
    """One relay-test session; returns the ``smtp_relay`` fact."""
    dialogue = RelayDialogue(
        address, port=port, domain=relay.domain, helo=relay.helo,
        confirm_mailbox=relay.mailbox if relay.confirm else None,
        now=now or utcnow(), token=secrets.token_hex(6))
    end = time.monotonic() + deadline
    try:
        sock = socket.create_connection((address, port), timeout=relay.timeout)
    except OSError as exc:
        dialogue.abort(f"cannot connect: {exc.strerror or exc}")
        return dialogue.result()
    try:
        if use_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test is about relaying, not the certificate
            sock = ctx.wrap_socket(sock, server_hostname=None)
        while not dialogue.done:
            left = end - time.monotonic()
            if left <= 0:
                dialogue.timeout()
                break
            sock.settimeout(min(relay.timeout, left))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                dialogue.timeout()
                break
            commands = dialogue.receive(data) if data else dialogue.closed()
            for command in commands:
                sock.sendall(command)
    except (OSError, ssl.SSLError) as exc:
        if not dialogue.done:
            dialogue.abort(f"connection error: {getattr(exc, 'strerror', None) or exc}")
    finally:
        try:
            sock.close()
        except OSError:
            pass
    return dialogue.result()


def _with_fact(p: PortResult, fact: dict[str, Any]) -> PortResult:
    svc = p.service or Service(name="smtp")
    return replace(p, service=replace(svc, extra={**svc.extra, "smtp_relay": fact}))


def run_relay_tests(run: ScanRun, relay: RelayOptions, *, now: datetime | None = None,
                    on_result: ResultCallback | None = None,
                    max_workers: int = MAX_WORKERS) -> ScanRun:
    """*run* with an ``smtp_relay`` fact on every open mail port it tested."""
    if not relay.enabled:
        return run
    targets = relay_targets(run, relay)
    if not targets:
        return run

    def one(item: tuple[Host, PortResult]) -> tuple[str, PortResult, dict[str, Any]]:
        host, p = item
        tls = p.port in IMPLICIT_TLS_PORTS or (p.service is not None
                                               and p.service.tunnel in ("ssl", "tls"))
        fact = relay_session(host.address, p.port, relay, use_tls=tls, now=now)
        if on_result is not None:
            on_result(host.address, p, fact)
        return host.address, p, fact

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(targets)))) as pool:
        results = list(pool.map(one, targets))
    facts = {(addr, p.protocol, p.port): fact for addr, p, fact in results}
    hosts = []
    for h in run.hosts:
        ports = tuple(_with_fact(p, facts[(h.address, p.protocol, p.port)])
                      if (h.address, p.protocol, p.port) in facts else p for p in h.ports)
        hosts.append(replace(h, ports=ports))
    return replace(run, hosts=tuple(hosts))


__all__ = ["is_mail_port", "relay_session", "relay_targets", "run_relay_tests"]
