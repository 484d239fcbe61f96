"""SMBv1 accepted (NT LM 0.12) and SMB signing not required."""

from __future__ import annotations

from collections.abc import Iterable

from portscope.checks.base import Context
from portscope.model import Finding, Host

SMB1_DIALECTS = ("NT LM 0.12", "NT LANMAN 1.0", "LANMAN2.1", "LANMAN1.0")


def check(ctx: Context, host: Host) -> Iterable[Finding | None]:
    for p in ctx.open_ports(host):
        svc = p.service
        if svc is None:
            continue
        x = svc.extra
        dialects = [str(d) for d in x.get("dialects") or []]
        evidence = f"dialects: {', '.join(dialects)}" if dialects else ""
        if x.get("smbv1") is True or any(d in SMB1_DIALECTS for d in dialects):
            yield ctx.finding("smb.smbv1", host, p, entry=ctx.entry(p),
                              evidence=evidence or "SMBv1 negotiation accepted")
        signing = x.get("signing")
        if signing in ("disabled", "enabled"):
            yield ctx.finding("smb.signing", host, p, entry=ctx.entry(p),
                              params={"signing": signing},
                              evidence=(evidence + "\n" if evidence else "") +
                              f"signing: {signing}")
