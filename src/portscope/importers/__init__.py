"""Reading other tools' (and portscope's own) result files into the model.

One module per format, one line each in ``IMPORTERS``; :func:`load_file` picks the
format from the file's first bytes unless told. Every input is untrusted: anything
malformed is a :class:`~portscope.errors.DataError` with a one-line message (exit 65),
never a traceback; XML is parsed with defusedxml.
"""

from __future__ import annotations

import sys

from portscope.errors import DataError, UsageError, reading
from portscope.importers import masscan, nmapxml, portscope_json
from portscope.importers.base import Importer
from portscope.model import ScanRun

IMPORTERS: dict[str, Importer] = {i.name: i for i in (
    portscope_json.JSONL_IMPORTER,
    portscope_json.JSON_IMPORTER,
    nmapxml.IMPORTER,
    masscan.JSON_IMPORTER,
    masscan.LIST_IMPORTER,
)}

MAX_SIZE = 2 << 30


def detect(data: bytes) -> Importer:
    head = data[:65536]
    for importer in IMPORTERS.values():
        if importer.sniff(head):
            return importer
    raise DataError("unrecognised format (known: " + ", ".join(
        f"{i.name} = {i.description}" for i in IMPORTERS.values()) + ")")


def parse_bytes(data: bytes, fmt: str | None = None) -> tuple[ScanRun, str]:
    """(run, format name) of the file contents *data*."""
    if fmt is not None:
        try:
            importer = IMPORTERS[fmt]
        except KeyError:
            raise UsageError(f"unknown input format {fmt!r} (choose from: "
                             f"{', '.join(IMPORTERS)})") from None
    else:
        importer = detect(data)
    try:
        run = importer.parse(data)
    except RecursionError:
        raise DataError(f"{importer.name}: nested too deeply") from None
    return run, importer.name


def load_file(path: str, fmt: str | None = None) -> tuple[ScanRun, str]:
    """Read and parse *path* (``-`` = standard input). Errors name the file."""
    with reading(path):
        if path == "-":
            data = sys.stdin.buffer.read(MAX_SIZE + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_SIZE + 1)
    if len(data) > MAX_SIZE:
        raise DataError(f"{path}: larger than {MAX_SIZE >> 30} GiB")
    if not data.strip():
        raise DataError(f"{path}: empty file")
    try:
        return parse_bytes(data, fmt)
    except DataError as exc:
        raise DataError(f"{path}: {exc.message}") from None


__all__ = ["IMPORTERS", "Importer", "detect", "load_file", "parse_bytes"]
