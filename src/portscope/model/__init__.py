"""The one result model shared by every part of portscope (see DESIGN.md, "result contract")."""

from typing import TYPE_CHECKING, Any

from portscope.model.collapse import (
    DEFAULT_COLLAPSE_THRESHOLD,
    collapse_host,
    collapse_ports,
    expand_host,
    format_port_list,
    iter_port_list,
)
from portscope.model.core import (
    SCHEMA_VERSION,
    ExtraPorts,
    ExtraReason,
    Finding,
    Host,
    HostStatus,
    OSGuess,
    PortResult,
    PortState,
    Protocol,
    Reason,
    ScanRun,
    Service,
    Severity,
    Stats,
    address_key,
    format_time,
    parse_time,
    sort_ports,
    utcnow,
)

if TYPE_CHECKING:
    from portscope.model.inventory import (
        COMPARISON_KIND,
        INVENTORY_KIND,
        BindScope,
        ComparedPort,
        Comparison,
        Exposure,
        Family,
        Inventory,
        ListeningSocket,
        LocalAddress,
        Risk,
        SocketProcess,
        bind_scope,
        canonical_address,
        unmap,
    )

# the local-inventory types are imported when first used (``portscope local``,
# ``compare``, ``audit --local``): a scan does not need them (~20 ms at start)
_LAZY = frozenset({
    "COMPARISON_KIND", "INVENTORY_KIND", "BindScope", "ComparedPort", "Comparison",
    "Exposure", "Family", "Inventory", "ListeningSocket", "LocalAddress", "Risk",
    "SocketProcess", "bind_scope", "canonical_address", "unmap"
})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from portscope.model import inventory

        value = getattr(inventory, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COMPARISON_KIND",
    "DEFAULT_COLLAPSE_THRESHOLD",
    "INVENTORY_KIND",
    "SCHEMA_VERSION",
    "BindScope",
    "ComparedPort",
    "Comparison",
    "Exposure",
    "ExtraPorts",
    "ExtraReason",
    "Family",
    "Finding",
    "Host",
    "HostStatus",
    "Inventory",
    "ListeningSocket",
    "LocalAddress",
    "OSGuess",
    "PortResult",
    "PortState",
    "Protocol",
    "Reason",
    "Risk",
    "ScanRun",
    "Service",
    "Severity",
    "SocketProcess",
    "Stats",
    "address_key",
    "bind_scope",
    "canonical_address",
    "collapse_host",
    "collapse_ports",
    "expand_host",
    "format_port_list",
    "format_time",
    "iter_port_list",
    "parse_time",
    "sort_ports",
    "unmap",
    "utcnow",
]
