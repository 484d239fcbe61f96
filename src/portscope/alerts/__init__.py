"""Alerts of ``portscope watch``: triggers computed from a diff (pure, :mod:`.core`) and
channels that deliver them (:mod:`.channels`, one module each)."""

from portscope.alerts.channels import CHANNELS, Channel, DeliveryError, parse_channel
from portscope.alerts.core import (
    TRIGGERS,
    Alert,
    alerts_from_diff,
    muted_by,
    normalize_scope,
    still_active,
)

__all__ = [
    "CHANNELS",
    "TRIGGERS",
    "Alert",
    "Channel",
    "DeliveryError",
    "alerts_from_diff",
    "muted_by",
    "normalize_scope",
    "parse_channel",
    "still_active",
]
