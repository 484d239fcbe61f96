"""What every importer shares: the interface and the run id of an imported file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from portscope.model import ScanRun


@dataclass(frozen=True)
class Importer:
    """One input format: ``sniff`` looks at the first bytes of a file, ``parse`` turns
    the whole file into a run (raising :class:`~portscope.errors.DataError` on anything
    malformed)."""

    name: str
    description: str
    sniff: Callable[[bytes], bool]
    parse: Callable[[bytes], ScanRun]


def import_id(prefix: str, started: datetime, data: bytes) -> str:
    """A stable id for an imported file: the same file always gets the same id, so
    importing it twice is noticed."""
    digest = hashlib.sha256(data).hexdigest()[:6]
    return f"{prefix}-{started.strftime('%Y%m%dT%H%M%SZ')}-{digest}"
