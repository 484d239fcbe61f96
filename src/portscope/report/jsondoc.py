"""``json``: the result contract (DESIGN.md) as one JSON document.

The document is exactly ``run.to_dict()`` with every host passed through
:func:`~portscope.model.collapse_host`: big groups of closed/filtered ports are
summarised in ``extraports`` *with their exact port lists*, so nothing is lost::

    run = ScanRun.from_dict(json.load(f))
    run = run.with_hosts(expand_host(h) for h in run.hosts)   # every port back

Written once, from the final run, in :meth:`JSONOutput.finish`, one host at a time
(:func:`iter_document`): the text is byte for byte ``json_dumps(document, indent=2)``, but
memory does not grow with the number of hosts (a /16 sweep's document is hundreds of MB
as one string and its intermediate pieces).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar

from portscope.model import ScanRun, collapse_host
from portscope.report._common import json_dumps
from portscope.report.base import Output


def collapsed_document(run: ScanRun) -> dict[str, object]:
    """The contract document of *run*, hosts collapsed."""
    return replace(run, hosts=tuple(collapse_host(h) for h in run.hosts)).to_dict()


_HOSTS = "@@portscope-hosts@@"


def iter_document(run: ScanRun, *, ascii_only: bool = False) -> Iterator[str]:
    """The text of ``json_dumps(collapsed_document(run), indent=2) + "\\n"`` in pieces,
    one host at a time (each host collapsed and converted only when it is written)."""
    head = replace(run, hosts=()).to_dict()
    head["hosts"] = _HOSTS
    text = json_dumps(head, ascii_only=ascii_only, indent=2)
    # a raw newline never occurs inside a JSON string: this is the top-level key
    marker = f'\n  "hosts": "{_HOSTS}"'
    at = text.index(marker)
    before, after = text[:at], text[at + len(marker):]
    if not run.hosts:
        yield before + '\n  "hosts": []' + after + "\n"
        return
    yield before + '\n  "hosts": ['
    for i, host in enumerate(run.hosts):
        body = json_dumps(collapse_host(host).to_dict(), ascii_only=ascii_only, indent=2)
        yield ("," if i else "") + "\n    " + body.replace("\n", "\n    ")
    yield "\n  ]" + after + "\n"


class JSONOutput(Output):
    name: ClassVar[str] = "json"

    def finish(self, run: ScanRun) -> None:
        for piece in iter_document(run, ascii_only=not self.unicode_ok):
            self.write(piece)
