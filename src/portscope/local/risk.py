"""Risk levels for reachable ports, from the audit's knowledge base (issue 5).

The knowledge base is used through one small interface::

    from portscope.checks.kb import load_kb
    kb = load_kb()
    entry = kb.lookup(port, protocol, service_name)   # None, or an object with
    entry.severity                                     # Severity (or its string)
    entry.severity_reason(lang) / entry.title(lang) / entry.remediation(lang)

:class:`KBRiskSource` adapts any such object to :class:`~portscope.local.compare.RiskSource`;
:func:`default_risk_source` loads the audit's knowledge base when this installation has
one, and returns None otherwise (the comparison then has no risk column). A knowledge
base that misbehaves for one port costs that port its rating, never the comparison.
"""

from __future__ import annotations

import importlib
from typing import Any

from portscope.model import Risk, Severity

KB_MODULE = "portscope.checks.kb"


class KBRiskSource:
    """A :class:`~portscope.local.compare.RiskSource` over a knowledge base object."""

    def __init__(self, kb: Any, name: str = "audit knowledge base") -> None:
        self.kb = kb
        self.name = name

    def rate(self, port: int, protocol: str, service: str | None, lang: str) -> Risk | None:
        try:
            entry = self.kb.lookup(port, protocol, service)
            if entry is None:
                return None
            severity = Severity(str(getattr(entry.severity, "value", entry.severity)).lower())
            return Risk(severity=severity, title=_text(entry, "title", lang),
                        reason=_text(entry, "severity_reason", lang),
                        remediation=_text(entry, "remediation", lang))
        except Exception:
            return None


def _text(entry: Any, attr: str, lang: str) -> str:
    value = getattr(entry, attr, None)
    if value is None:
        return ""
    if callable(value):
        value = value(lang)
    return str(value) if value is not None else ""


def default_risk_source() -> KBRiskSource | None:
    """The audit's knowledge base, or None when this installation has none."""
    try:
        module = importlib.import_module(KB_MODULE)
    except ImportError:
        return None
    load = getattr(module, "load_kb", None)
    if load is None:
        return None
    try:
        return KBRiskSource(load())
    except Exception:
        return None
