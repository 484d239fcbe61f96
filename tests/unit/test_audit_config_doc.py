"""The configuration example in docs/audit.md parses and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from audit_sample import sample_run

from portscope.checks import run_checks
from portscope.checks.config import load_config, parse_config
from portscope.errors import PortscopeError
from portscope.model import Severity

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def test_documented_configuration_example(tmp_path: Path) -> None:
    text = DOC.read_text("utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example is not None
    path = tmp_path / "audit.toml"
    path.write_text(example.group(1), "utf-8")
    config = load_config(path)
    assert config.lang == "ja" and config.fail_on is Severity.HIGH
    run = run_checks(sample_run(), config)
    mail = run.hosts[0]
    ftp = next(f for f in mail.findings if f.check == "exposure.service" and f.port == 21)
    assert ftp.severity is Severity.INFO  # the [[override]] for 198.18.0.0/24 wins
    pop3 = next(f for f in mail.findings if f.check == "exposure.service" and f.port == 110)
    assert pop3.severity is Severity.LOW and "メールボックス" in pop3.severity_reason
    assert not any(f.check == "disclosure.version" for f in mail.findings)
    assert run.extra["audit"]["overrides"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"services": {"ftp": {"severity": "severe"}}}, "severity 'severe'"),
    ({"colour": "red"}, "unknown key"),
    ({"override": [{"severity": "low"}]}, "at least one of"),
    ({"relay": {"confirm": True}}, "mailbox"),
    ({"lang": "fr"}, "lang 'fr'"),
])
def test_bad_configuration_is_reported_with_its_place(doc: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(PortscopeError, match=re.escape(message)):
        parse_config(doc, "audit.toml")
