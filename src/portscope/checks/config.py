"""The audit's configuration: report language, severity overrides, relay-test options,
disabled checks, the policy. Read from TOML (``~/.config/portscope/audit.toml`` or
``--config FILE``)::

    lang = "ja"
    fail_on = "high"
    disable = ["disclosure.version"]

    [services.ftp]                 # the rating of an exposed service (KB entry/service/port)
    severity = "high"
    reason = "FTP passwords open the web root: defacement, stolen system files."

    [checks."tls.self-signed"]     # the level of a kind of finding
    severity = "low"
    reason = "Internal services use our own CA."

    [[override]]                   # finer rules: any of check, service, port, protocol, hosts
    check = "exposure.service"
    port = 21
    hosts = ["198.18.0.0/24"]
    severity = "info"
    reason = "The FTP server of the office network."

    [relay]
    domain = "example.com"         # outside domain used in the relay tests
    confirm = false                # true: also send one message (DATA) to `mailbox`
    mailbox = "relay-check@mydomain.example"

Pure: parsing only (the file is read by :func:`load_config`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from portscope.checks.kb import LANGS, SeverityOverride
from portscope.errors import DataError, UsageError, reading
from portscope.model import Severity

DEFAULT_RELAY_DOMAIN = "example.com"
RELAY_PORTS = (25, 465, 587)


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "portscope" / "audit.toml"


@dataclass(frozen=True, slots=True)
class OverrideRule:
    """``[[override]]``: a level for the findings matching every field that is set."""

    severity: Severity
    reason: str
    source: str
    check: str | None = None  # glob over finding kinds ("tls.*")
    service: str | None = None  # KB entry id or service name
    port: int | None = None
    protocol: str | None = None
    hosts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def matches(self, *, kind: str, address: str, port: int | None, protocol: str | None,
                services: Sequence[str]) -> bool:
        if self.check is not None and not fnmatch.fnmatchcase(kind, self.check):
            return False
        if self.port is not None and self.port != port:
            return False
        if self.protocol is not None and self.protocol != protocol:
            return False
        if self.service is not None and self.service.lower() not in {s.lower() for s in services}:
            return False
        if self.hosts:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            if not any(ip in net for net in self.hosts if net.version == ip.version):
                return False
        return True

    @property
    def as_override(self) -> SeverityOverride:
        return SeverityOverride(self.severity, self.reason, self.source)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    enabled: bool = True
    domain: str = DEFAULT_RELAY_DOMAIN
    confirm: bool = False  # send DATA once, to `mailbox`
    mailbox: str | None = None
    ports: tuple[int, ...] = RELAY_PORTS
    timeout: float = 10.0  # per reply
    helo: str = "portscope.invalid"


@dataclass(frozen=True)
class AuditConfig:
    """Everything that changes what the checks report."""

    lang: str = "en"
    services: Mapping[str, SeverityOverride] = field(default_factory=dict)
    checks: Mapping[str, SeverityOverride] = field(default_factory=dict)
    rules: tuple[OverrideRule, ...] = ()
    disable: frozenset[str] = frozenset()
    fail_on: Severity | None = None
    relay: RelayOptions = field(default_factory=RelayOptions)
    policy: Any = None  # portscope.checks.policy.Policy | None
    now: datetime | None = None  # the time certificates are judged at (default: the run's)
    source: str | None = None  # the scanner's source address (policy "from" rules)
    kb_files: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # files this configuration was read from

    def override_for(self, *, kind: str, address: str, port: int | None,
                     protocol: str | None, services: Sequence[str]) -> SeverityOverride | None:
        """The user's level for one finding: the last matching ``[[override]]`` rule, else
        ``[checks."kind"]`` (exact kind, then globs)."""
        for rule in reversed(self.rules):
            if rule.matches(kind=kind, address=address, port=port, protocol=protocol,
                            services=services):
                return rule.as_override
        if kind in self.checks:
            return self.checks[kind]
        for pattern, ov in self.checks.items():
            if fnmatch.fnmatchcase(kind, pattern):
                return ov
        return None

    def disabled(self, kind: str) -> bool:
        return any(fnmatch.fnmatchcase(kind, d) or kind.split(".")[0] == d for d in self.disable)


# --------------------------------------------------------------------------------------
# parsing


def parse_severity(value: Any, where: str) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise DataError(f"{where}: severity {value!r} is not one of {allowed}") from None


def parse_lang(value: Any, where: str = "lang") -> str:
    if value not in LANGS:
        raise UsageError(f"{where}: language {value!r} is not one of {', '.join(LANGS)}")
    return str(value)


def _override(raw: Any, where: str, source: str) -> SeverityOverride:
    if isinstance(raw, str):
        return SeverityOverride(parse_severity(raw, where), "", source)
    if not isinstance(raw, Mapping) or "severity" not in raw:
        raise DataError(f"{where}: expected a table with severity = \"...\" and reason = \"...\"")
    unknown = set(raw) - {"severity", "reason"}
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise DataError(f"{where}.reason: expected a string")
    return SeverityOverride(parse_severity(raw["severity"], where), reason, source)


def _networks(values: Any, where: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network,
                                                ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise DataError(f"{where}: expected a list of addresses or networks")
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            raise DataError(f"{where}: {v!r} is not an address or network") from None
    return tuple(out)


def _rule(raw: Any, where: str, source: str) -> OverrideRule:
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: expected a table")
    allowed = {"severity", "reason", "check", "service", "port", "protocol", "hosts"}
    unknown = set(raw) - allowed
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if not set(raw) & {"check", "service", "port", "protocol", "hosts"}:
        raise DataError(f"{where}: a rule needs at least one of check, service, port, "
                        f"protocol, hosts")
    ov = _override({k: raw[k] for k in ("severity", "reason") if k in raw}, where, source)
    port = raw.get("port")
    if port is not None and (not isinstance(port, int) or not 0 <= port <= 65535):
        raise DataError(f"{where}.port: expected a port number")
    proto = raw.get("protocol")
    if proto is not None and proto not in ("tcp", "udp"):
        raise DataError(f"{where}.protocol: expected tcp or udp")
    return OverrideRule(severity=ov.severity, reason=ov.reason, source=source,
                        check=raw.get("check"), service=raw.get("service"), port=port,
                        protocol=proto, hosts=_networks(raw.get("hosts", []), f"{where}.hosts"))


def _relay(raw: Any, where: str) -> RelayOptions:
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: expected a table")
    allowed = {"enabled", "domain", "confirm", "mailbox", "ports", "timeout", "helo"}
    unknown = set(raw) - allowed
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    opts = RelayOptions()
    ports = raw.get("ports", list(opts.ports))
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536
                                              for p in ports):
        raise DataError(f"{where}.ports: expected a list of port numbers")
    relay = RelayOptions(
        enabled=bool(raw.get("enabled", True)),
        domain=str(raw.get("domain", opts.domain)),
        confirm=bool(raw.get("confirm", False)),
        mailbox=raw.get("mailbox"),
        ports=tuple(ports),
        timeout=float(raw.get("timeout", opts.timeout)),
        helo=str(raw.get("helo", opts.helo)),
    )
    validate_relay(relay, where)
    return relay


def validate_relay(relay: RelayOptions, where: str = "relay") -> None:
    if relay.confirm and not relay.mailbox:
        raise UsageError(f"{where}: confirming a relay sends a real message: give a mailbox "
                         f"you own (--relay-mailbox or mailbox = \"you@your-domain\")")
    if relay.mailbox is not None and ("@" not in relay.mailbox or any(
            c in relay.mailbox for c in "<>\r\n \t")):
        raise UsageError(f"{where}: {relay.mailbox!r} is not a mailbox address")
    if not relay.domain or any(c in relay.domain for c in "<>@\r\n \t"):
        raise UsageError(f"{where}: {relay.domain!r} is not a domain name")


def parse_config(doc: Mapping[str, Any], source: str = "configuration") -> AuditConfig:
    """A parsed TOML document -> :class:`AuditConfig` (``DataError`` on anything wrong)."""
    allowed = {"lang", "fail_on", "disable", "services", "checks", "override", "relay",
               "kb", "source"}
    unknown = set(doc) - allowed
    if unknown:
        raise DataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (known: "
                        f"{', '.join(sorted(allowed))})")
    services = {}
    for key, raw in (doc.get("services") or {}).items():
        services[str(key)] = _override(raw, f"{source}: services.{key}", source)
    checks = {}
    for key, raw in (doc.get("checks") or {}).items():
        checks[str(key)] = _override(raw, f"{source}: checks.{key}", source)
    rules = tuple(_rule(r, f"{source}: override[{i}]", source)
                  for i, r in enumerate(doc.get("override") or []))
    disable = doc.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise DataError(f"{source}: disable: expected a list of check names")
    kb = doc.get("kb") or []
    if isinstance(kb, str):
        kb = [kb]
    lang = doc.get("lang", "en")
    if lang not in LANGS:
        raise DataError(f"{source}: lang {lang!r} is not one of {', '.join(LANGS)}")
    return AuditConfig(
        lang=lang,
        services=services,
        checks=checks,
        rules=rules,
        disable=frozenset(disable),
        fail_on=parse_severity(doc["fail_on"], f"{source}: fail_on") if "fail_on" in doc
        else None,
        relay=_relay(doc["relay"], f"{source}: relay") if "relay" in doc else RelayOptions(),
        source=doc.get("source"),
        kb_files=tuple(str(k) for k in kb),
        sources=(source,),
    )


def load_config(path: str | Path | None = None) -> AuditConfig:
    """Read *path*, or the default file when it exists (else the defaults)."""
    explicit = path is not None
    p = Path(path).expanduser() if path is not None else default_config_path()
    if not explicit and not p.exists():
        return AuditConfig()
    label = str(path) if explicit else str(p)
    with reading(label):
        data = p.read_bytes()
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{label}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{label}: not valid TOML ({exc})") from None
    return parse_config(doc, label)


__all__ = [
    "DEFAULT_RELAY_DOMAIN",
    "RELAY_PORTS",
    "AuditConfig",
    "OverrideRule",
    "RelayOptions",
    "default_config_path",
    "load_config",
    "parse_config",
    "parse_lang",
    "parse_severity",
    "validate_relay",
]
