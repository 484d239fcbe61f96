"""A fail-closed allowlist of networks a process may scan.

Set ``PORTSCOPE_SAFETY_ALLOW`` to a comma-separated list of prefixes (e.g.
``127.0.0.0/8,198.18.0.0/15,2001:db8::/32``) and portscope refuses, before sending
anything, every target outside them. The test suite sets it for every test, so no bug
can make a test probe an address it does not own; operators can use it to fence a
shared scanning host.
"""

from __future__ import annotations

import ipaddress
import os

from portscope.errors import UsageError
from portscope.targets.hosts import Interval, OctetBlock, TargetSet

ENV = "PORTSCOPE_SAFETY_ALLOW"

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(value: str | None = None) -> list[Net] | None:
    """The allowlist from *value* (default: the environment); None when unset."""
    text = os.environ.get(ENV) if value is None else value
    if text is None or not text.strip():
        return None
    nets: list[Net] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise UsageError(f"{ENV}: {part!r} is not a network prefix") from None
    return nets


def _within(version: int, first: int, last: int, nets: list[Net]) -> bool:
    return any(n.version == version and int(n.network_address) <= first
               and last <= int(n.broadcast_address) for n in nets)


def check_targets(targets: TargetSet, nets: list[Net] | None = None) -> None:
    """Raise :class:`UsageError` if any target lies outside the allowlist."""
    allow = nets if nets is not None else allowed_networks()
    if allow is None:
        return
    for block in targets.blocks:
        if isinstance(block, Interval):
            first, last = block.first, block.last
        elif isinstance(block, OctetBlock):
            first, last = block.int_at(0), block.int_at(block.size - 1)
        else:  # pragma: no cover - no other block kinds
            raise UsageError("unknown target block")
        if not _within(block.version, first, last, allow):
            version, value = block.version, first
            text = str(ipaddress.ip_address(value) if version == 4
                       else ipaddress.IPv6Address(value))
            raise UsageError(f"target {text} is outside {ENV} "
                             f"({', '.join(str(n) for n in allow)}): refusing to scan it")
