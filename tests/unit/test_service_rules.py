"""The product/version rule tables and CPE names."""

from __future__ import annotations

import pytest

from portscope.services import rules
from portscope.services.base import Facts


@pytest.mark.parametrize(("source", "text", "product", "version", "cpe"), [
    ("ssh", "OpenSSH_9.2p1 Debian-2+deb12u3", "OpenSSH", "9.2p1",
     "cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*"),
    ("ftp", "(vsFTPd 3.0.3)", "vsftpd", "3.0.3", "cpe:2.3:a:beasts:vsftpd:3.0.3:*:*:*:*:*:*:*"),
    ("smtp", "mx ESMTP Postfix 3.7.11 (Debian/GNU)", "Postfix smtpd", "3.7.11",
     "cpe:2.3:a:postfix:postfix:3.7.11:*:*:*:*:*:*:*"),
    ("http-server", "nginx/1.22.1", "nginx", "1.22.1", "cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*"),
    ("http-server", "nginx", "nginx", None, "cpe:2.3:a:f5:nginx:*:*:*:*:*:*:*:*"),
    ("dns", "dnsmasq-2.90", "dnsmasq", "2.90", "cpe:2.3:a:thekelleys:dnsmasq:2.90:*:*:*:*:*:*:*"),
    ("dns", "unbound 1.17.1", "Unbound", "1.17.1",
     "cpe:2.3:a:nlnetlabs:unbound:1.17.1:*:*:*:*:*:*:*"),
    ("mysql", "5.5.5-10.11.6-MariaDB-0+deb12u1", "MariaDB", "10.11.6",
     "cpe:2.3:a:mariadb:mariadb:10.11.6:*:*:*:*:*:*:*"),
    ("pop3", "+OK Dovecot ready.", "Dovecot pop3d", None,
     "cpe:2.3:a:dovecot:dovecot:*:*:*:*:*:*:*:*"),
])
def test_rules(source: str, text: str, product: str, version: str | None, cpe: str) -> None:
    facts = Facts()
    assert rules.match(source, text, facts) is not None
    assert (facts.product, facts.version) == (product, version)
    assert facts.cpe == [cpe]


def test_no_rule_matches_leaves_facts_alone() -> None:
    facts = Facts()
    assert rules.match("ftp", "220 Hello there", facts) is None
    assert facts.product is None and facts.cpe == []
    assert rules.match("no-such-source", "x", facts) is None


def test_cpe_escaping() -> None:
    assert rules.cpe("a:v:p", "2+deb12u3") == r"cpe:2.3:a:v:p:2\+deb12u3:*:*:*:*:*:*:*"
    assert rules.cpe("a:v:p", "1.0 beta") == "cpe:2.3:a:v:p:1.0_beta:*:*:*:*:*:*:*"
    assert rules.cpe("a:v:p") == "cpe:2.3:a:v:p:*:*:*:*:*:*:*:*"


def test_rule_patterns_compile_and_have_products() -> None:
    for source, table in rules.RULES.items():
        assert table, source
        for r in table:
            assert r.pattern.groups <= 9
            assert 0 <= r.confidence <= 10
