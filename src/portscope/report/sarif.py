"""``sarif``: SARIF 2.1.0 (one rule per finding kind, one result per finding; the location
is the network endpoint ``tcp://ADDRESS:PORT`` with a logical location; level and
``security-severity`` from the finding's severity)."""

from __future__ import annotations

from typing import Any, ClassVar

from portscope import __version__
from portscope.model import ScanRun
from portscope.report._common import json_dumps, sorted_findings
from portscope.report.audit_view import report_lang, text
from portscope.report.base import Output

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note",
         "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0",
                     "info": "0.0"}


def _uri_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def sarif_document(run: ScanRun, lang: str | None = None) -> dict[str, Any]:
    lang = lang or report_lang(run)
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for h in run.hosts:
        for f in sorted_findings(h.findings):
            if f.check not in index:
                index[f.check] = len(rules)
                rules.append({
                    "id": f.check,
                    "name": "".join(p.capitalize() for p in f.check.replace("-", ".")
                                    .split(".")),
                    "shortDescription": {"text": f.check},
                    "fullDescription": {"text": text(f, "risk", lang) or f.check},
                    "help": {"text": text(f, "remediation", lang) or f.check},
                    "defaultConfiguration": {"level": LEVEL[f.severity.value]},
                    "properties": {"tags": ["security", str(f.extra.get("category") or "audit")],
                                   "security-severity": SECURITY_SEVERITY[f.severity.value]},
                })
            proto = f.protocol.value if f.protocol else "tcp"
            where = (f"{proto}://{_uri_host(h.address)}:{f.port}" if f.port is not None
                     else f"ip://{_uri_host(h.address)}")
            message = text(f, "title", lang)
            reason = text(f, "severity_reason", lang)
            if reason:
                message += f". {reason}"
            results.append({
                "ruleId": f.check,
                "ruleIndex": index[f.check],
                "level": LEVEL[f.severity.value],
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": where}},
                    "logicalLocations": [{"name": f"{h.address}:{f.port}/{proto}"
                                          if f.port is not None else h.address,
                                          "kind": "resource"}],
                }],
                "partialFingerprints": {"portscopeFindingId/v1": f.id},
                "properties": {
                    "severity": f.severity.value,
                    "security-severity": SECURITY_SEVERITY[f.severity.value],
                    "confidence": f.confidence,
                    "remediation": text(f, "remediation", lang),
                    "evidence": f.evidence,
                    "references": list(f.references),
                    "host": h.address,
                },
            })
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "portscope", "version": __version__,
                                "semanticVersion": __version__,
                                "rules": rules}},
            "invocations": [{"executionSuccessful": run.complete,
                             "commandLine": run.command or "portscope audit"}],
            "automationDetails": {"id": f"portscope-audit/{run.id}"},
            "results": results,
        }],
    }


class SARIFOutput(Output):
    name: ClassVar[str] = "sarif"
    lang: ClassVar[str | None] = None

    def finish(self, run: ScanRun) -> None:
        self.write(json_dumps(sarif_document(run, self.lang), ascii_only=not self.unicode_ok,
                              indent=2) + "\n")
