"""Unknown services: a bare line feed pair (like nmap's GenericLines probe) to make a
quiet server say something the other recognizers know."""

from __future__ import annotations

from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, exchange


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(b"\r\n\r\n", lambda d: b"\n" in d or len(d) >= 64, limit=4096)
    facts.saw(r.data)


PROTOCOL = ServiceProtocol(name="generic", dialog=dialog, rarity=1)
