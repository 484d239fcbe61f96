"""The knowledge base: schema validation, coverage of the seeds' ports, lookups, texts in
both languages, severity reasons that match their level, user overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from portscope.checks.kb import (
    LANGS,
    KnowledgeBase,
    SeverityOverride,
    load_kb,
    parse_checks,
    parse_entries,
    unfold_japanese,
)
from portscope.errors import DataError
from portscope.model import PortResult, PortState, Protocol, Service, Severity

KB_DIR = Path(__file__).resolve().parents[2] / "src" / "portscope" / "data" / "kb"

# Every port the seeds name (001-004) and the list of commonly exposed services.
SEED_PORTS = [
    ("tcp", 23), ("udp", 69), ("tcp", 110), ("tcp", 111), ("tcp", 135), ("udp", 137),
    ("udp", 138), ("tcp", 139), ("udp", 161), ("udp", 162), ("tcp", 445), ("tcp", 512),
    ("tcp", 513), ("tcp", 514), ("udp", 514), ("tcp", 1433), ("udp", 1434), ("tcp", 2049),
    ("tcp", 4444), ("tcp", 3389), ("tcp", 21), ("tcp", 22), ("tcp", 25), ("udp", 53),
    ("tcp", 80), ("tcp", 113), ("tcp", 443),
]
COMMON_PORTS = [
    ("tcp", 143), ("tcp", 389), ("tcp", 5900), ("tcp", 3306), ("tcp", 5432), ("tcp", 1521),
    ("tcp", 27017), ("tcp", 6379), ("tcp", 11211), ("tcp", 9200), ("tcp", 2375),
    ("tcp", 6443), ("tcp", 10250), ("udp", 123), ("udp", 1900), ("udp", 19), ("udp", 17),
    ("udp", 5353), ("udp", 11211), ("udp", 389), ("tcp", 6000), ("tcp", 993), ("tcp", 995),
]
LEVEL_WORDS = {"critical": ("critical", "緊急"), "high": ("high", "高"),
               "medium": ("medium", "中"), "low": ("low", "低"),
               "info": ("informational", "情報")}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_kb()


def test_shipped_files_validate_against_their_schemas() -> None:
    ports = yaml.safe_load((KB_DIR / "ports.yaml").read_text("utf-8"))
    checks = yaml.safe_load((KB_DIR / "checks.yaml").read_text("utf-8"))
    assert len(parse_entries(ports, "ports.yaml")) >= 60
    assert len(parse_checks(checks, "checks.yaml")) >= 25


@pytest.mark.parametrize(("proto", "port"), SEED_PORTS + COMMON_PORTS)
def test_covers_seed_and_common_ports(kb: KnowledgeBase, proto: str, port: int) -> None:
    assert kb.lookup(port, proto) is not None, f"{port}/{proto} missing"


def test_seed_levels(kb: KnowledgeBase) -> None:
    def level(port: int, proto: str = "tcp") -> Severity:
        e = kb.lookup(port, proto)
        assert e is not None
        return e.severity

    assert level(23) is Severity.HIGH  # telnet
    assert level(135) is level(139) is level(445) is Severity.HIGH
    assert level(4444) is Severity.HIGH
    assert level(69, "udp") is Severity.HIGH
    assert level(22) is Severity.LOW
    assert level(443) is Severity.INFO
    assert level(2375) is Severity.CRITICAL
    # the seed: the ISP said FTP medium, POP3 high; the author disagreed
    assert level(21) is Severity.MEDIUM
    assert level(110) is Severity.MEDIUM


def test_every_entry_has_both_languages_and_a_reason_matching_its_level(
        kb: KnowledgeBase) -> None:
    for e in kb.entries:
        for lang in LANGS:
            for text in (e.title(lang), e.function(lang), e.risk(lang),
                         e.severity_reason(lang), e.remediation(lang)):
                assert text.strip(), (e.id, lang)
        en, ja = LEVEL_WORDS[e.severity.value]
        assert en in e.severity_reason("en").lower(), (e.id, e.severity_reason("en"))
        assert f"「{ja}」" in e.severity_reason("ja"), (e.id, e.severity_reason("ja"))


def test_japanese_texts_are_japanese_without_folding_spaces(kb: KnowledgeBase) -> None:
    cjk = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    stray = re.compile(r"[\u3000-\u9fff\uff00-\uffef] | [\u3000-\u9fff\uff00-\uffef]")
    for e in kb.entries:
        for text in (e.risk("ja"), e.remediation("ja"), e.severity_reason("ja")):
            assert cjk.search(text), e.id
            assert not stray.search(text), (e.id, text)
    for kind in kb.checks.values():
        for key, text in kind.texts["ja"].items():
            assert not stray.search(text), (kind.id, key, text)


def test_unfold_japanese() -> None:
    folded = unfold_japanese("公開された TELNET は、 攻撃 (Mirai)")
    assert folded == "公開されたTELNETは、攻撃（Mirai）"
    assert unfold_japanese("restrict default noquery") == "restrict default noquery"


def test_every_check_kind_has_the_same_keys_in_both_languages(kb: KnowledgeBase) -> None:
    for kind in kb.checks.values():
        assert set(kind.texts["en"]) == set(kind.texts["ja"]), kind.id


def test_lookup_prefers_the_detected_service(kb: KnowledgeBase) -> None:
    telnet = kb.lookup(2323, "tcp", "telnet")
    assert telnet is not None and telnet.id == "telnet"
    assert kb.lookup(23, "tcp", "ssh").id == "ssh"  # type: ignore[union-attr]
    assert kb.lookup(993, "tcp", "ssl/imap").id == "imaps"  # type: ignore[union-attr]
    assert kb.lookup(8443, "tcp", "unknown").id == "https"  # type: ignore[union-attr]
    assert kb.lookup(40000, "tcp", None) is None
    assert kb.lookup(40000, "tcp", "no-such-service") is None
    assert kb.lookup(53, "UDP").id == "dns"  # type: ignore[union-attr]


def test_lookup_port_uses_detection_only_when_detected(kb: KnowledgeBase) -> None:
    guessed = PortResult(23, Protocol.TCP, PortState.OPEN, "syn-ack", service=Service("ssh"))
    detected = PortResult(23, Protocol.TCP, PortState.OPEN, "syn-ack",
                          service=Service("ssh", method="banner"))
    tls = PortResult(9993, Protocol.TCP, PortState.OPEN, "syn-ack",
                     service=Service("imap", method="probe", tunnel="ssl"))
    assert kb.lookup_port(guessed).id == "telnet"  # type: ignore[union-attr]
    assert kb.lookup_port(detected).id == "ssh"  # type: ignore[union-attr]
    assert kb.lookup_port(tls).id == "imaps"  # type: ignore[union-attr]


def test_api_used_by_local_comparison(kb: KnowledgeBase) -> None:
    e = kb.lookup(23, "tcp")
    assert e is not None
    assert isinstance(e.severity, Severity)
    assert e.title("en") == "Telnet" and e.title("ja") == "TELNET"
    assert "SSH" in e.remediation("en") and "SSH" in e.remediation("ja")
    assert e.risk("ja") and e.severity_reason() and e.references


def test_overrides_carry_the_users_reason_and_the_default(kb: KnowledgeBase) -> None:
    over = kb.with_overrides({
        "ftp": SeverityOverride(Severity.HIGH, "FTP opens the web root.", "audit.toml"),
        "tcp/110": SeverityOverride(Severity.LOW, "POP3 exposes one mailbox.", "audit.toml"),
    })
    ftp = over.lookup(21, "tcp")
    pop3 = over.lookup(110, "tcp")
    assert ftp is not None and pop3 is not None
    assert ftp.severity is Severity.HIGH and ftp.overridden
    assert ftp.default_severity is Severity.MEDIUM
    assert "FTP opens the web root." in ftp.severity_reason("en")
    assert "default is medium" in ftp.severity_reason("en")
    assert "「中」" in ftp.severity_reason("ja") and "audit.toml" in ftp.severity_reason("ja")
    assert pop3.severity is Severity.LOW
    assert kb.lookup(21, "tcp").severity is Severity.MEDIUM  # type: ignore[union-attr]
    with pytest.raises(DataError, match="names no knowledge-base entry"):
        kb.with_overrides({"nosuch": SeverityOverride(Severity.LOW, "", "x.toml")})


def _doc() -> dict[str, object]:
    return yaml.safe_load((KB_DIR / "ports.yaml").read_text("utf-8"))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda e: e.update(severity="hgh"), r"entries\[0\]\.severity"),
    (lambda e: e.pop("ja"), r"entries\[0\].*'ja' is a required property"),
    (lambda e: e["en"].update(risk=""), r"entries\[0\]\.en\.risk"),
    (lambda e: e.update(ports=["tcp/99999x"]), r"entries\[0\]\.ports\[0\]"),
    (lambda e: e.update(colour="red"), r"Additional properties"),
])
def test_schema_rejects_malformed_entries(mutate: object, message: str) -> None:
    doc = _doc()
    entries = doc["entries"]
    assert isinstance(entries, list)
    mutate(entries[0])  # type: ignore[operator]
    with pytest.raises(DataError, match=message):
        parse_entries(doc, "ports.yaml")


def test_duplicate_ports_are_rejected(tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    doc = _doc()
    entries = doc["entries"]
    assert isinstance(entries, list)
    clone = dict(entries[1])
    clone["id"] = "my-ssh"
    clone["services"] = ["my-ssh"]
    doc["entries"] = [clone]
    extra.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with pytest.raises(DataError, match="in both"):
        load_kb(extra=[extra])


def test_extra_files_add_and_replace_entries(tmp_path: Path) -> None:
    doc = _doc()
    entries = doc["entries"]
    assert isinstance(entries, list)
    mine = dict(entries[0])
    mine.update(id="acme-agent", ports=["tcp/7777"], services=["acme"], severity="critical")
    doc["entries"] = [mine]
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    kb = load_kb(extra=[path])
    assert kb.lookup(7777, "tcp").id == "acme-agent"  # type: ignore[union-attr]
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries: [\n", "utf-8")
    with pytest.raises(DataError, match=r"bad\.yaml"):
        load_kb(extra=[bad])
