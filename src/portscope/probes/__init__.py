"""Scan types: one module per type, one registry line each.

A scan type declares what it is (name, nmap flag, protocol, whether it needs raw
sockets) and the pure logic that turns what the network said into a port state
with its reason. Engines in ``portscope.engine`` do the sending and receiving.
"""

from __future__ import annotations

from portscope.errors import UsageError
from portscope.probes.base import RawProbe, ScanType, Verdict

REGISTRY: dict[str, ScanType] = {}


def register(scan_type: ScanType) -> ScanType:
    if scan_type.flag in REGISTRY:
        raise ValueError(f"scan type -s{scan_type.flag} registered twice")
    REGISTRY[scan_type.flag] = scan_type
    return scan_type


def get(flag: str) -> ScanType:
    try:
        return REGISTRY[flag]
    except KeyError:
        known = " ".join(f"-s{f}" for f in sorted(REGISTRY))
        raise UsageError(f"unknown scan type -s{flag} (known: {known})") from None


# ---- the registry: add new scan types here -------------------------------------------
from portscope.probes import ack as _ack  # noqa: E402  (after ScanType)
from portscope.probes import connect as _connect  # noqa: E402
from portscope.probes import fin as _fin  # noqa: E402
from portscope.probes import null as _null  # noqa: E402
from portscope.probes import syn as _syn  # noqa: E402
from portscope.probes import udp as _udp  # noqa: E402
from portscope.probes import window as _window  # noqa: E402
from portscope.probes import xmas as _xmas  # noqa: E402

register(_connect.SCAN_TYPE)
register(_syn.SCAN_TYPE)
register(_fin.SCAN_TYPE)
register(_null.SCAN_TYPE)
register(_xmas.SCAN_TYPE)
register(_ack.SCAN_TYPE)
register(_window.SCAN_TYPE)
register(_udp.SCAN_TYPE)

__all__ = ["REGISTRY", "RawProbe", "ScanType", "Verdict", "get", "register"]
