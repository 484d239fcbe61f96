"""Alert channels: one module each, one line in ``CHANNELS``.

A channel is made from the text after ``--alert``: ``webhook:URL``,
``email:TO[,TO...][?smtp=HOST[:PORT]&from=ADDR&starttls=1]``, ``syslog[:HOST[:PORT]|:/dev/log]``,
``command:CMD``. ``send`` delivers one alert or raises :class:`DeliveryError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from portscope.errors import PortscopeError, UsageError


class DeliveryError(PortscopeError):
    """An alert could not be delivered (it is kept and retried next cycle)."""


class Channel(Protocol):
    name: str

    def describe(self) -> str: ...
    def send(self, alert: dict[str, Any], text: str) -> None: ...


def _webhook(rest: str) -> Channel:
    from portscope.alerts.channels.webhook import WebhookChannel

    return WebhookChannel.from_spec(rest)


def _email(rest: str) -> Channel:
    from portscope.alerts.channels.email import EmailChannel

    return EmailChannel.from_spec(rest)


def _syslog(rest: str) -> Channel:
    from portscope.alerts.channels.syslog import SyslogChannel

    return SyslogChannel.from_spec(rest)


def _command(rest: str) -> Channel:
    from portscope.alerts.channels.command import CommandChannel

    return CommandChannel.from_spec(rest)


CHANNELS: dict[str, Callable[[str], Channel]] = {
    "webhook": _webhook,
    "email": _email,
    "syslog": _syslog,
    "command": _command,
}


def parse_channel(spec: str) -> Channel:
    """A channel from ``NAME:REST`` (``syslog`` alone is fine)."""
    name, _, rest = spec.partition(":")
    factory = CHANNELS.get(name.strip().lower())
    if factory is None:
        raise UsageError(f"unknown alert channel {name!r} in {spec!r} (channels: "
                         f"{', '.join(f'{c}:...' for c in CHANNELS)})")
    return factory(rest)


__all__ = ["CHANNELS", "Channel", "DeliveryError", "parse_channel"]
