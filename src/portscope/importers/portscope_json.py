"""portscope's own files: the JSON result contract (``--json``) and JSON Lines
(``--jsonl``, also cut short)."""

from __future__ import annotations

import json

from portscope.errors import DataError
from portscope.importers.base import Importer
from portscope.model import ScanRun, expand_host


def sniff_json(head: bytes) -> bool:
    text = head.lstrip()[:4096].decode("utf-8", "replace")
    return text.startswith("{") and '"schema_version"' in text and '"type"' not in text[:40]


def parse_json(data: bytes) -> ScanRun:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"not valid JSON ({exc})") from None
    run = ScanRun.from_dict(doc)
    return run.with_hosts(expand_host(h) for h in run.hosts)


def sniff_jsonl(head: bytes) -> bool:
    first = head.lstrip().split(b"\n", 1)[0]
    return first.startswith(b"{") and b'"type"' in first and b'"run"' in first


def parse_jsonl(data: bytes) -> ScanRun:
    from portscope.report import read_jsonl

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text") from None
    return read_jsonl(text.splitlines())


JSON_IMPORTER = Importer(name="json", description="portscope JSON result document",
                         sniff=sniff_json, parse=parse_json)
JSONL_IMPORTER = Importer(name="jsonl", description="portscope JSON Lines stream",
                          sniff=sniff_jsonl, parse=parse_jsonl)
