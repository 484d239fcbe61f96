"""LDAP (RFC 4511): an anonymous base search of the root DSE, no bind."""

from __future__ import annotations

from typing import Any

from portscope.services import ber
from portscope.services.base import Context, Dialog, Facts, ServiceProtocol, clean, exchange

ATTRIBUTES = ("namingContexts", "defaultNamingContext", "supportedLDAPVersion", "vendorName",
              "vendorVersion", "supportedSASLMechanisms", "dnsHostName", "serverName",
              "forestFunctionality", "domainFunctionality", "domainControllerFunctionality",
              "structuralObjectClass", "objectClass", "isGlobalCatalogReady")

SEARCH_REQUEST = 0x63
SEARCH_ENTRY = 0x64
SEARCH_DONE = 0x65
UNWILLING_TO_PERFORM = 53
OPENLDAP_AUTHC = "authentication required"


def root_dse_request(message_id: int) -> bytes:
    search = ber.sequence(
        ber.octets(b""),  # baseObject: the root DSE
        ber.integer(0, tag=ber.ENUMERATED),  # scope: baseObject
        ber.integer(0, tag=ber.ENUMERATED),  # derefAliases: never
        ber.integer(0), ber.integer(0),  # size and time limit
        ber.tlv(0x01, b"\x00"),  # typesOnly: FALSE
        ber.octets(b"objectClass", tag=0x87),  # filter: (objectClass=*)
        ber.sequence(*(ber.octets(a) for a in ATTRIBUTES)),
        tag=SEARCH_REQUEST)
    return ber.sequence(ber.integer(message_id), search)


def parse_messages(data: bytes) -> tuple[dict[str, list[str]] | None, int | None, str]:
    """``(root DSE attributes, resultCode of SearchResultDone, diagnostic message)``."""
    attrs: dict[str, list[str]] | None = None
    code: int | None = None
    diag = ""
    pos = 0
    try:
        while pos < len(data):
            tag, msg, pos = ber.read(data, pos)
            if tag != ber.SEQUENCE:
                break
            parts = ber.children(msg)
            if len(parts) < 2:
                break
            op_tag, op = parts[1]
            if op_tag == SEARCH_ENTRY:
                fields = ber.children(op)
                attrs = {}
                if len(fields) >= 2:
                    for _t, pa in ber.items(fields[1][1]):
                        kv = ber.children(pa)
                        if len(kv) == 2:
                            name = clean(kv[0][1], 64)
                            attrs[name] = [clean(v, 300) for _vt, v in ber.items(kv[1][1])][:50]
            elif op_tag in (SEARCH_DONE, 0x78):  # SearchResultDone, ExtendedResponse
                fields = ber.children(op)
                if fields:
                    code = ber.to_int(fields[0][1])
                if len(fields) >= 3:
                    diag = clean(fields[2][1], 300)
                break
    except ber.BERError:
        pass
    return attrs, code, diag


def done_complete(data: bytes) -> bool:
    _attrs, code, _ = parse_messages(data)
    if code is not None:
        return True
    try:
        ber.read(data)
    except ber.BERError:
        return len(data) > 2 and data[0] != ber.SEQUENCE
    return False


def _get(attrs: dict[str, list[str]], name: str) -> list[str]:
    for k, v in attrs.items():
        if k.lower() == name.lower():
            return v
    return []


def _product(attrs: dict[str, list[str]], facts: Facts) -> None:
    vendor = _get(attrs, "vendorName")
    vversion = _get(attrs, "vendorVersion")
    soc = [s.lower() for s in _get(attrs, "structuralObjectClass")]
    if _get(attrs, "forestFunctionality") or _get(attrs, "isGlobalCatalogReady"):
        facts.set_product("Microsoft Windows Active Directory LDAP")
        facts.extra.setdefault("ostype", "Windows")
    elif "openldaprootdse" in soc:
        facts.set_product("OpenLDAP", cpe=["cpe:2.3:a:openldap:openldap:*:*:*:*:*:*:*:*"])
    elif vendor:
        facts.set_product(vendor[0], vversion[0] if vversion else None)


def dialog(ctx: Context, facts: Facts) -> Dialog:
    mid = (ctx.nonce & 0x7FFF) + 1
    r = yield from exchange(root_dse_request(mid), done_complete, limit=131072)
    facts.saw(r.data)
    attrs, code, diag = parse_messages(r.data)
    if attrs is None and code is None:
        return
    facts.identify("ldap", 10, "probe")
    if attrs is not None:
        facts.extra["anonymous_bind"] = True
        contexts = _get(attrs, "namingContexts")
        if contexts:
            facts.extra["naming_contexts"] = contexts
        extra: dict[str, Any] = {}
        for name, key in (("supportedLDAPVersion", "ldap_versions"),
                          ("supportedSASLMechanisms", "sasl_mechanisms"),
                          ("dnsHostName", "dns_host_name"),
                          ("defaultNamingContext", "default_naming_context")):
            v = _get(attrs, name)
            if v:
                extra[key] = v if name.startswith("supported") else v[0]
        facts.extra.update(extra)
        _product(attrs, facts)
    elif code is not None:
        facts.extra["anonymous_bind"] = False
        if diag:
            facts.extra["error"] = diag
        if code == UNWILLING_TO_PERFORM and diag == OPENLDAP_AUTHC:
            # slapd's "require authc" refusal, in these words only in OpenLDAP
            facts.set_product("OpenLDAP", cpe=["cpe:2.3:a:openldap:openldap:*:*:*:*:*:*:*:*"])


PROTOCOL = ServiceProtocol(name="ldap", dialog=dialog, rarity=5, hints=("ldap",),
                           tls_hints=("ldaps",))
