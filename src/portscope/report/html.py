"""``html``: the security-check report as one self-contained HTML file (inline CSS, no
scripts, no external resources), readable on screen and in print, in English or Japanese
(the run's audit language, see :func:`portscope.report.audit_view.report_lang`)."""

from __future__ import annotations

import functools
from typing import ClassVar

from portscope.model import ScanRun
from portscope.report.audit_view import audit_report
from portscope.report.base import Output


@functools.lru_cache(maxsize=1)
def _template() -> object:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("portscope", "data/templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("audit.html.j2")


def render_html(run: ScanRun, lang: str | None = None) -> str:
    """The HTML report of *run* in *lang* (default: the run's audit language)."""
    r = audit_report(run, lang)
    template = _template()
    html: str = template.render(r=r, L=r["labels"])  # type: ignore[attr-defined]
    return html


class HTMLOutput(Output):
    name: ClassVar[str] = "html"
    lang: ClassVar[str | None] = None

    def finish(self, run: ScanRun) -> None:
        self.write(render_html(run, self.lang))
