"""TLS certificate and protocol problems: expired or soon expiring, self-signed, weak key,
weak signature, internal names in a public host's certificate, SSL/old TLS versions.
Reads the ``tls`` facts of docs/service-facts.md."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from portscope.checks.base import Context
from portscope.model import Finding, Host, PortResult, Severity

EXPIRING_DAYS = 30
MIN_BITS = {"RSA": 2048, "DSA": 2048, "EC": 224, "ECDSA": 224}
WEAK_SIGNATURES = ("md2", "md4", "md5", "sha1")
OLD_SSL = ("SSLv2", "SSLv3")
OLD_TLS = ("TLSv1.0", "TLSv1", "TLSv1.1")


def _is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def cert_evidence(t: Mapping[str, Any]) -> str:
    keys = ("subject", "issuer", "san_dns", "san_ip", "not_before", "not_after", "days_left",
            "self_signed", "key_type", "key_bits", "signature_algorithm", "sha256",
            "negotiated_version", "versions")
    lines = []
    for k in keys:
        if k in t and t[k] not in (None, "", []):
            v = t[k]
            if isinstance(v, list):
                v = ", ".join(str(x) for x in v)
            lines.append(f"{k}: {v}")
    return "\n".join(lines)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        t = p.service.tls if p.service is not None else None
        if not t:
            continue
        yield from _port(ctx, host, p, t)


def _port(ctx: Context, host: Host, p: PortResult, t: Mapping[str, Any]
          ) -> Iterable[Finding | None]:
    ev = cert_evidence(t)
    entry = ctx.entry(p)
    common: dict[str, Any] = {"not_after": t.get("not_after", "?"),
                              "subject": t.get("subject_cn") or t.get("subject", "?")}
    days = _int(t.get("days_left"))
    if t.get("expired") is True:
        yield ctx.finding("tls.expired", host, p, entry=entry, params=common, evidence=ev)
    elif days is not None and 0 <= days < EXPIRING_DAYS:
        yield ctx.finding("tls.expiring", host, p, entry=entry,
                          params={**common, "days": days}, evidence=ev)
    if t.get("self_signed") is True:
        yield ctx.finding("tls.self-signed", host, p, entry=entry, params=common, evidence=ev)
    key_type = str(t.get("key_type") or "").upper()
    bits = _int(t.get("key_bits"))
    if bits is not None and key_type in MIN_BITS and bits < MIN_BITS[key_type]:
        yield ctx.finding("tls.weak-key", host, p, entry=entry,
                          params={"key_type": key_type, "key_bits": bits}, evidence=ev)
    sig = str(t.get("signature_algorithm") or "")
    if sig and any(w in sig.lower() for w in WEAK_SIGNATURES):
        yield ctx.finding("tls.weak-signature", host, p, entry=entry,
                          params={"algorithm": sig}, evidence=ev)
    names = [str(n) for n in t.get("private_names") or []]
    if names and _is_public(host.address):
        yield ctx.finding("tls.private-names", host, p, entry=entry,
                          params={"names": ", ".join(names[:8])}, evidence=ev)
    versions = [str(v) for v in t.get("versions") or []]
    ssl = [v for v in versions if v in OLD_SSL]
    old = [v for v in versions if v in OLD_TLS]
    if ssl or old:
        shown = ", ".join(ssl + old)
        yield ctx.finding("tls.old-protocol", host, p, entry=entry, params={"versions": shown},
                          parts={"reason_detail": "reason_detail.ssl" if ssl
                                 else "reason_detail.tls"},
                          severity=Severity.HIGH if ssl else Severity.MEDIUM, evidence=ev)
