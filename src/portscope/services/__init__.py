"""Service and version detection: pure protocol dialogs, match rules and facts.

One module per protocol, registered here (one line each). The engine
(:mod:`portscope.engine.services`) drives them over the network; the facts they learn use
the vocabulary of docs/service-facts.md.
"""

from __future__ import annotations

from portscope.services import (
    dns,
    ftp,
    generic,
    http,
    imap,
    ldap,
    memcache,
    mongodb,
    mysql,
    netbios,
    ntp,
    pop3,
    postgresql,
    rdp,
    redis,
    smb,
    smtp,
    snmp,
    ssh,
    telnet,
    vnc,
    x11,
)
from portscope.services.base import Context, Facts, ServiceProtocol

PROTOCOLS: dict[str, ServiceProtocol] = {m.PROTOCOL.name: m.PROTOCOL for m in (
    ssh,
    ftp,
    smtp,
    pop3,
    imap,
    http,
    dns,
    snmp,
    netbios,
    smb,
    rdp,
    telnet,
    mysql,
    postgresql,
    redis,
    mongodb,
    memcache,
    ntp,
    ldap,
    vnc,
    x11,
    generic,
)}
"""Protocol name -> module registration."""

__all__ = ["PROTOCOLS", "Context", "Facts", "ServiceProtocol"]
