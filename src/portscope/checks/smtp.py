"""SMTP: the open-relay test's verdict (fact ``smtp_relay``, written by the engine's relay
runner, see :mod:`portscope.checks.relay`) and VRFY/EXPN user enumeration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from portscope.checks.base import Context
from portscope.model import Finding, Host, PortResult


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None:
            continue
        relay = svc.extra.get("smtp_relay")
        if isinstance(relay, Mapping):
            yield relay_finding(ctx, host, p, relay)
        commands = [c for c in ("VRFY", "EXPN") if svc.extra.get(c.lower()) is True]
        if commands:
            yield ctx.finding("smtp.user-enumeration", host, p, entry=ctx.entry(p),
                              params={"commands": "/".join(commands)},
                              evidence=" and ".join(commands) + " answered 2xx/252")


def _evidence(relay: Mapping[str, Any]) -> str:
    lines = []
    accepted = relay.get("accepted_tests") or []
    if accepted:
        lines.append("Accepted relay tests:")
        for t in accepted[:16]:
            if isinstance(t, Mapping):
                lines.append(f"  MAIL FROM:<{t.get('mail_from', '')}> RCPT TO:"
                             f"<{t.get('rcpt_to', '')}> -> {t.get('reply', '')}")
    if relay.get("domain"):
        lines.append(f"Test domain: {relay['domain']}")
    if relay.get("error"):
        lines.append(f"Stopped: {relay['error']}")
    transcript = relay.get("transcript")
    if isinstance(transcript, str) and transcript:
        lines.append("SMTP dialogue:")
        lines.append(transcript)
    return "\n".join(lines)


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def relay_finding(ctx: Context, host: Host, p: PortResult,
                  relay: Mapping[str, Any]) -> Finding | None:
    verdict = relay.get("verdict")
    entry = ctx.entry(p)
    params = {"accepted": _int(relay.get("accepted")), "total": _int(relay.get("tests")),
              "error": str(relay.get("error") or "")}
    evidence = _evidence(relay)
    extra = {"relay": {k: v for k, v in relay.items() if k != "transcript"}}
    if verdict == "open":
        confirmed = relay.get("confirmed") is True
        return ctx.finding("smtp.open-relay", host, p, entry=entry, params=params,
                           evidence=evidence, confidence=100 if confirmed else 80,
                           confidence_note="confidence.data" if confirmed
                           else "confidence.rcpt", extra=extra)
    if verdict in ("refused", "auth-required"):
        auth = verdict == "auth-required"
        return ctx.finding("smtp.relay-refused", host, p, entry=entry,
                           params={**params, "auth_note": ""},
                           parts={"auth_note": "auth_note"} if auth else None,
                           evidence=evidence, extra=extra)
    return ctx.finding("smtp.relay-inconclusive", host, p, entry=entry, params=params,
                       evidence=evidence, extra=extra)
