"""The knowledge base of ports and protocols, and the texts of the audit's findings.

::

    from portscope.checks.kb import load_kb
    kb = load_kb()
    entry = kb.lookup(23, "tcp")                 # or kb.lookup(2323, "tcp", "telnet")
    entry.severity, entry.severity_reason("ja"), entry.title("en"), entry.risk("ja")
    entry.remediation("en"), entry.function("ja"), entry.references

The data lives in ``portscope/data/kb/`` (``ports.yaml``, ``checks.yaml``), written by the
portscope developers in English and Japanese, and is validated against the JSON Schemas
beside it every time it is loaded: a malformed file raises :class:`DataError` naming the
place. Users change levels in the audit configuration (:mod:`portscope.checks.config`);
:meth:`KnowledgeBase.with_overrides` returns a knowledge base with those levels applied.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from portscope.errors import DataError, reading
from portscope.model import PortResult, Severity

LANGS = ("en", "ja")
"""Languages every text exists in."""

GENERIC_NAMES = frozenset({"", "unknown", "tcpwrapped", "generic"})
"""Service names that say nothing about the service."""

SEVERITY_WORDS = {
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low",
           "info": "info"},
    "ja": {"critical": "緊急", "high": "高", "medium": "中", "low": "低", "info": "情報"},
}


def severity_word(severity: Severity | str, lang: str) -> str:
    """``high`` / ``高``."""
    value = severity.value if isinstance(severity, Severity) else str(severity)
    return SEVERITY_WORDS.get(lang, SEVERITY_WORDS["en"]).get(value, value)


class _Keep(dict[str, Any]):
    """format_map helper: unknown placeholders stay as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, params: Mapping[str, Any]) -> str:
    """*template* with ``{name}`` placeholders from *params* (unknown ones kept)."""
    try:
        return string.Formatter().vformat(template, (), _Keep(params))
    except (ValueError, IndexError, AttributeError):
        return template


@dataclass(frozen=True, slots=True)
class SeverityOverride:
    """A level set by the user, with the user's reason and where it was set."""

    severity: Severity
    reason: str = ""
    source: str = "configuration"

    def explain(self, default: Severity, lang: str) -> str:
        """The reason as shown in reports: the user's words, then where the level was set
        and portscope's default."""
        words = self.reason.strip()
        if lang == "ja":
            note = (f"({self.source}で「{severity_word(self.severity, 'ja')}」に変更。"
                    f"portscopeの既定値は「{severity_word(default, 'ja')}」)")
            return f"{words}{note}" if words else note
        note = (f"(set to {self.severity.value} in {self.source}; portscope's default is "
                f"{default.value})")
        return f"{words} {note}" if words else note


@dataclass(frozen=True, slots=True, eq=False)
class KBEntry:
    """One port/protocol of the knowledge base."""

    id: str
    ports: tuple[tuple[str, int], ...]
    services: tuple[str, ...]
    category: str
    severity: Severity
    software: tuple[str, ...]
    actions: tuple[str, ...]
    references: tuple[str, ...]
    texts: Mapping[str, Mapping[str, str]]
    amplification_factor: float | None = None
    default_severity: Severity | None = None  # set when an override changed the level
    override: SeverityOverride | None = None

    def _text(self, key: str, lang: str) -> str:
        texts = self.texts.get(lang) or self.texts["en"]
        return texts[key]

    def name(self, lang: str = "en") -> str:
        return self._text("name", lang)

    def title(self, lang: str = "en") -> str:
        """The protocol's display name (``Telnet`` / ``TELNET``)."""
        return self._text("name", lang)

    def function(self, lang: str = "en") -> str:
        """What the protocol does (the ISP report's 機能)."""
        return self._text("function", lang)

    def risk(self, lang: str = "en") -> str:
        """What can go wrong (想定される危険)."""
        return self._text("risk", lang)

    def remediation(self, lang: str = "en") -> str:
        """What to do (対策)."""
        return self._text("remediation", lang)

    def default_severity_reason(self, lang: str = "en") -> str:
        return self._text("severity_reason", lang)

    def severity_reason(self, lang: str = "en") -> str:
        """Why this level: portscope's written reason, or the user's when overridden."""
        if self.override is not None and self.default_severity is not None:
            return self.override.explain(self.default_severity, lang)
        return self._text("severity_reason", lang)

    @property
    def overridden(self) -> bool:
        return self.override is not None

    def covers(self, port: int, protocol: str) -> bool:
        return (protocol.lower(), port) in self.ports


@dataclass(frozen=True, slots=True)
class CheckKind:
    """The texts and default level of one kind of finding (``cleartext.login`` ...)."""

    id: str
    category: str
    severity: str  # a Severity value, "from-kb" or "from-kb-min-medium"
    confidence: int
    references: tuple[str, ...]
    texts: Mapping[str, Mapping[str, str]]

    def text(self, lang: str, key: str, params: Mapping[str, Any] | None = None) -> str:
        """Text *key* in *lang* (English when missing), placeholders filled; "" if absent."""
        texts = self.texts.get(lang) or {}
        template = texts.get(key)
        if template is None:
            template = self.texts.get("en", {}).get(key, "")
        return fill(template, params or {})

    def has(self, key: str) -> bool:
        return key in self.texts.get("en", {})

    @property
    def fixed_severity(self) -> Severity | None:
        try:
            return Severity(self.severity)
        except ValueError:
            return None


def _norm(name: str) -> str:
    return name.strip().lower()


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[KBEntry, ...]
    checks: Mapping[str, CheckKind]
    _by_port: Mapping[tuple[str, int], KBEntry] = field(default_factory=dict, repr=False)
    _by_service: Mapping[str, KBEntry] = field(default_factory=dict, repr=False)
    _by_id: Mapping[str, KBEntry] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, entries: Iterable[KBEntry], checks: Mapping[str, CheckKind]) -> KnowledgeBase:
        entries = tuple(entries)
        by_port: dict[tuple[str, int], KBEntry] = {}
        by_service: dict[str, KBEntry] = {}
        by_id: dict[str, KBEntry] = {}
        for e in entries:
            if e.id in by_id:
                raise DataError(f"knowledge base: entry id {e.id!r} defined twice")
            by_id[e.id] = e
            for key in e.ports:
                if key in by_port:
                    raise DataError(f"knowledge base: {key[1]}/{key[0]} is in both "
                                    f"{by_port[key].id!r} and {e.id!r}")
                by_port[key] = e
            for name in e.services:
                n = _norm(name)
                if n in by_service and by_service[n].id != e.id:
                    raise DataError(f"knowledge base: service name {name!r} is in both "
                                    f"{by_service[n].id!r} and {e.id!r}")
                by_service[n] = e
        return cls(entries, dict(checks), by_port, by_service, by_id)

    # -- lookups -------------------------------------------------------------------------

    def entry(self, entry_id: str) -> KBEntry | None:
        return self._by_id.get(entry_id)

    def by_service(self, service_name: str | None, *, tunnel: str | None = None) -> KBEntry | None:
        """The entry for a service name (``ssl/imap``, ``imap`` + tunnel ``ssl`` ...)."""
        if not service_name or _norm(service_name) in GENERIC_NAMES:
            return None
        name = _norm(service_name)
        candidates = [name]
        if name.startswith("ssl/"):
            base = name[4:]
            candidates = [name, base + "s", base]
        elif tunnel in ("ssl", "tls"):
            candidates = ["ssl/" + name, name + "s", name]
        for c in candidates:
            e = self._by_service.get(c)
            if e is not None:
                return e
        return None

    def lookup(self, port: int, protocol: str, service_name: str | None = None) -> KBEntry | None:
        """The entry for a port: by *service_name* when given and known (a detected service
        beats the port number), else by port number and protocol; None when unknown."""
        if service_name:
            e = self.by_service(service_name)
            if e is not None:
                return e
        return self._by_port.get((str(protocol).lower(), int(port)))

    def lookup_port(self, p: PortResult) -> KBEntry | None:
        """The entry for a scanned port: a *detected* service by its name first, then the
        port number, then a port-table name."""
        svc = p.service
        proto = p.protocol.value
        if svc is not None and svc.detected:
            e = self.by_service(svc.name, tunnel=svc.tunnel)
            if e is not None:
                return e
        e = self._by_port.get((proto, p.port))
        if e is not None:
            return e
        if svc is not None and not svc.detected:
            return self.by_service(svc.name, tunnel=svc.tunnel)
        return None

    def check(self, kind: str) -> CheckKind:
        try:
            return self.checks[kind]
        except KeyError:
            raise DataError(f"knowledge base: no texts for finding kind {kind!r}") from None

    # -- overrides -----------------------------------------------------------------------

    def match_entries(self, key: str) -> list[KBEntry]:
        """Entries a configuration key names: an entry id, a service name, ``tcp/21``,
        ``21`` or a glob over ids (``netbios-*``)."""
        k = _norm(key)
        if k in self._by_id:
            return [self._by_id[k]]
        if k in self._by_service:
            return [self._by_service[k]]
        proto, _, num = k.rpartition("/")
        if num.isdigit():
            protos = [proto] if proto else ["tcp", "udp"]
            found: list[KBEntry] = []
            for pr in protos:
                e = self._by_port.get((pr, int(num)))
                if e is not None and all(e.id != f.id for f in found):
                    found.append(e)
            return found
        return [e for e in self.entries if fnmatch.fnmatchcase(e.id, k)]

    def with_overrides(self, overrides: Mapping[str, SeverityOverride]) -> KnowledgeBase:
        """A knowledge base whose entries named in *overrides* (see :meth:`match_entries`)
        carry the user's level and reason. Unknown keys raise :class:`DataError`."""
        if not overrides:
            return self
        changed: dict[str, KBEntry] = {}
        for key, ov in overrides.items():
            matched = self.match_entries(key)
            if not matched:
                raise DataError(f"{ov.source}: [services.{key}] names no knowledge-base entry "
                                f"(use an entry id such as 'ftp', a service name or 'tcp/21')")
            for e in matched:
                base = changed.get(e.id, e)
                default = base.default_severity or base.severity
                changed[e.id] = replace(base, severity=ov.severity, default_severity=default,
                                        override=ov)
        return KnowledgeBase.build((changed.get(e.id, e) for e in self.entries), self.checks)


# --------------------------------------------------------------------------------------
# loading and validation


def _validate(doc: Any, schema_name: str, label: str) -> None:
    import jsonschema

    schema = json.loads(resources.files("portscope.data").joinpath("kb", schema_name)
                        .read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise DataError(f"{label}: {where.lstrip('.') or 'document'}: {err.message}{more}")


def _load_yaml(text: str, label: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise DataError(f"{label}: {problem}{at}") from None


_CJK = "\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_FOLD_SPACE = re.compile(f"(?<=[{_CJK}]) +| +(?=[{_CJK}])")


def unfold_japanese(text: str) -> str:
    """Drop the spaces YAML line folding puts between Japanese characters (Japanese text
    has no spaces between words; spaces between Latin words are kept), and use full-width
    parentheses as Japanese typesetting does."""
    return _FOLD_SPACE.sub("", text).replace("(", "\uff08").replace(")", "\uff09")


def _texts(raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    out = {}
    for lang in LANGS:
        t = dict(raw[lang])
        if lang == "ja":
            t = {k: unfold_japanese(v) for k, v in t.items()}
        out[lang] = t
    return out


def parse_port_key(text: str) -> tuple[str, int]:
    proto, _, num = text.partition("/")
    port = int(num)
    if not 0 <= port <= 65535:
        raise DataError(f"port {text!r} out of range")
    return proto, port


def parse_entries(doc: Any, label: str) -> list[KBEntry]:
    """Validated ``ports.yaml`` document -> entries."""
    _validate(doc, "ports.schema.json", label)
    out = []
    for raw in doc["entries"]:
        out.append(KBEntry(
            id=raw["id"],
            ports=tuple(parse_port_key(p) for p in raw["ports"]),
            services=tuple(raw["services"]),
            category=raw["category"],
            severity=Severity(raw["severity"]),
            software=tuple(raw["software"]),
            actions=tuple(raw["actions"]),
            references=tuple(raw["references"]),
            texts=_texts(raw),
            amplification_factor=raw.get("amplification_factor"),
        ))
    return out


def parse_checks(doc: Any, label: str) -> dict[str, CheckKind]:
    """Validated ``checks.yaml`` document -> finding kinds."""
    _validate(doc, "checks.schema.json", label)
    out = {}
    for kind, raw in doc["checks"].items():
        for lang in LANGS:
            missing = set(raw["en"]) - set(raw[lang])
            if missing:
                raise DataError(f"{label}: checks.{kind}.{lang}: missing "
                                f"{', '.join(sorted(missing))}")
        out[kind] = CheckKind(id=kind, category=raw["category"], severity=raw["severity"],
                              confidence=raw["confidence"], references=tuple(raw["references"]),
                              texts=_texts(raw))
    return out


def _packaged(name: str) -> str:
    return resources.files("portscope.data").joinpath("kb", name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _default_kb() -> KnowledgeBase:
    entries = parse_entries(_load_yaml(_packaged("ports.yaml"), "ports.yaml"), "ports.yaml")
    checks = parse_checks(_load_yaml(_packaged("checks.yaml"), "checks.yaml"), "checks.yaml")
    return KnowledgeBase.build(entries, checks)


def load_kb(*, extra: Iterable[str | Path] = (),
            overrides: Mapping[str, SeverityOverride] | None = None) -> KnowledgeBase:
    """The knowledge base shipped with portscope, plus *extra* files in the ``ports.yaml``
    format (an entry with an existing id replaces it), with *overrides* applied.
    Raises :class:`DataError` for a malformed file, :class:`InputFileError` for an
    unreadable one."""
    kb = _default_kb()
    extra = list(extra)
    if extra:
        entries = {e.id: e for e in kb.entries}
        for path in extra:
            label = str(path)
            with reading(label):
                text = Path(path).expanduser().read_text(encoding="utf-8")
            for e in parse_entries(_load_yaml(text, label), label):
                entries[e.id] = e
        kb = KnowledgeBase.build(entries.values(), kb.checks)
    if overrides:
        kb = kb.with_overrides(overrides)
    return kb


__all__ = [
    "GENERIC_NAMES",
    "LANGS",
    "CheckKind",
    "KBEntry",
    "KnowledgeBase",
    "SeverityOverride",
    "fill",
    "load_kb",
    "severity_word",
]
