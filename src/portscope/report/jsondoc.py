"""``json``: the result contract (DESIGN.md) as one JSON document.

The document is exactly ``run.to_dict()`` with every host passed through
:func:`~portscope.model.collapse_host`: big groups of closed/filtered ports are
summarised in ``extraports`` *with their exact port lists*, so nothing is lost::

    run = ScanRun.from_dict(json.load(f))
    run = run.with_hosts(expand_host(h) for h in run.hosts)   # every port back

Written once, from the final run, in :meth:`JSONOutput.finish`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from portscope.model import ScanRun, collapse_host
from portscope.report._common import json_dumps
from portscope.report.base import Output


def collapsed_document(run: ScanRun) -> dict[str, object]:
    """The contract document of *run*, hosts collapsed."""
    return replace(run, hosts=tuple(collapse_host(h) for h in run.hosts)).to_dict()


class JSONOutput(Output):
    name: ClassVar[str] = "json"

    def finish(self, run: ScanRun) -> None:
        self.write(json_dumps(collapsed_document(run), ascii_only=not self.unicode_ok,
                              indent=2) + "\n")
