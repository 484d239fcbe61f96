"""Product and version rules: portscope's own knowledge of what daemons say about themselves.

Each rule is a regular expression over one *source* of text that a dialog extracted
(``ssh``: the SSH software-version string; ``ftp``/``smtp``/``pop3``/``imap``: the greeting;
``http-server``: the ``Server`` header; ``dns``: the ``version.bind`` answer; ``mysql``:
the handshake's version string; ...). Templates use ``$1``..``$9`` for groups. The rules
were written from the protocols' specifications and from real banners of the daemons
(Debian, Ubuntu, RHEL and Windows defaults); they are not copied from any other tool's
database. The first matching rule of a source wins, so specific rules come first.

CPE names are CPE 2.3 formatted strings built by :func:`cpe`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from portscope.services.base import Facts

Template = str | Callable[[re.Match[str]], str | None] | None


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    product: Template
    version: Template = None
    extrainfo: Template = None
    cpe: str | None = None  # "a:vendor:product" (the version is appended)
    ostype: str | None = None
    name: str | None = None  # overrides the service name (e.g. a proxy found over http)
    confidence: int = 10


def rule(regex: str, product: Template, version: Template = None, extrainfo: Template = None,
         *, cpe: str | None = None, ostype: str | None = None, name: str | None = None,
         confidence: int = 10, flags: int = 0) -> Rule:
    return Rule(re.compile(regex, flags), product, version, extrainfo, cpe, ostype, name,
                confidence)


_CPE_SPECIAL = re.compile(r"([^A-Za-z0-9._\-])")


def cpe_escape(value: str) -> str:
    """Quote a value for a CPE 2.3 formatted string (``+`` -> ``\\+``, space -> ``_``)."""
    value = value.strip().replace(" ", "_").lower()
    return _CPE_SPECIAL.sub(r"\\\1", value) or "*"


def cpe(part_vendor_product: str, version: str | None = None) -> str:
    """``cpe("a:openbsd:openssh", "9.2p1")`` -> ``cpe:2.3:a:openbsd:openssh:9.2p1:*:...``."""
    part, vendor, product = part_vendor_product.split(":", 2)
    ver = cpe_escape(version) if version else "*"
    return f"cpe:2.3:{part}:{vendor}:{product}:{ver}:*:*:*:*:*:*:*"


_GROUP = re.compile(r"\$(\d)")


def expand(template: Template, m: re.Match[str]) -> str | None:
    if template is None:
        return None
    if callable(template):
        out = template(m)
    else:
        out = _GROUP.sub(lambda g: m.group(int(g.group(1))) or "" if int(g.group(1)) <= (
            m.re.groups) else "", template)
    if out is None:
        return None
    out = " ".join(out.split())
    return out or None


def match(source: str, text: str, facts: Facts, *, service: str | None = None) -> Rule | None:
    """Apply the first rule of *source* that matches *text* to *facts*; returns it."""
    for r in RULES.get(source, ()):
        m = r.pattern.search(text)
        if m is None:
            continue
        product = expand(r.product, m)
        version = expand(r.version, m)
        extrainfo = expand(r.extrainfo, m)
        if r.name or service:
            facts.identify(r.name or service or "", max(facts.confidence, r.confidence))
        facts.set_product(product, version, extrainfo,
                          cpe=[cpe(r.cpe, version)] if r.cpe else ())
        if r.ostype:
            facts.extra.setdefault("ostype", r.ostype)
        return r
    return None


def _distro(name: str) -> Callable[[re.Match[str]], str | None]:
    def f(m: re.Match[str]) -> str | None:
        return f"{name} {m.group(2)}" if m.group(2) else name
    return f


_I = re.IGNORECASE

RULES: dict[str, tuple[Rule, ...]] = {
    # the SSH software-version field and comments: "OpenSSH_9.2p1 Debian-2+deb12u3"
    "ssh": (
        rule(r"^OpenSSH_for_Windows_([\w.]+)", "OpenSSH for Windows", "$1",
             cpe="a:openbsd:openssh", ostype="Windows"),
        rule(r"^OpenSSH_([\w.]+)\s+Debian-(\S+)", "OpenSSH", "$1", _distro("Debian"),
             cpe="a:openbsd:openssh", ostype="Linux"),
        rule(r"^OpenSSH_([\w.]+)\s+Ubuntu-(\S+)", "OpenSSH", "$1", _distro("Ubuntu"),
             cpe="a:openbsd:openssh", ostype="Linux"),
        rule(r"^OpenSSH_([\w.]+)\s+Raspbian-(\S+)", "OpenSSH", "$1", _distro("Raspbian"),
             cpe="a:openbsd:openssh", ostype="Linux"),
        rule(r"^OpenSSH_([\w.]+)\s+FreeBSD-(\S+)", "OpenSSH", "$1", _distro("FreeBSD"),
             cpe="a:openbsd:openssh", ostype="FreeBSD"),
        rule(r"^OpenSSH_([\w.]+)(?:\s+(.+))?", "OpenSSH", "$1", "$2", cpe="a:openbsd:openssh"),
        rule(r"^dropbear_([\w.]+)", "Dropbear sshd", "$1",
             cpe="a:dropbear_ssh_project:dropbear_ssh", ostype="Linux"),
        rule(r"^dropbear\b", "Dropbear sshd", cpe="a:dropbear_ssh_project:dropbear_ssh",
             ostype="Linux"),
        rule(r"^libssh[_-]([\w.]+)", "libssh", "$1", cpe="a:libssh:libssh"),
        rule(r"^Cisco-([\d.]+)", "Cisco SSH", "$1", ostype="IOS"),
        rule(r"^ROSSSH", "MikroTik RouterOS sshd", ostype="RouterOS"),
        rule(r"^HUAWEI-([\d.]+)", "Huawei VRP sshd", "$1", ostype="VRP"),
        rule(r"^paramiko_([\w.]+)", "Paramiko Python sshd", "$1", cpe="a:paramiko:paramiko"),
        rule(r"^AsyncSSH_([\w.]+)", "AsyncSSH sshd", "$1"),
        rule(r"^Go$", "Golang x/crypto/ssh server"),
        rule(r"^mod_sftp(?:/([\w.]+))?", "ProFTPD mod_sftp", "$1", cpe="a:proftpd:proftpd"),
        rule(r"^Sun_SSH_([\w.]+)", "SunSSH", "$1", ostype="Solaris"),
        rule(r"^Serv-U_([\w.]+)", "Serv-U SSH Server", "$1", ostype="Windows"),
        rule(r"^Erlang/([\w.]+)", "Erlang sshd", "$1"),
        rule(r"^Twisted(?:Conch)?(?:_([\w.]+))?", "Twisted Conch sshd", "$1"),
        rule(r"^([A-Za-z][\w.+-]*?)[_-]v?(\d[\w.+-]*)", "$1", "$2", confidence=8),
        rule(r"^([A-Za-z][\w.+-]*)", "$1", confidence=8),
    ),
    # FTP greeting (all lines of the 220 reply)
    "ftp": (
        rule(r"\(vsFTPd ([\w.]+)\)", "vsftpd", "$1", cpe="a:beasts:vsftpd", ostype="Unix"),
        rule(r"ProFTPD ([\d][\w.]*)", "ProFTPD", "$1", cpe="a:proftpd:proftpd", ostype="Unix"),
        rule(r"ProFTPD", "ProFTPD", cpe="a:proftpd:proftpd", ostype="Unix"),
        rule(r"Pure-FTPd", "Pure-FTPd", cpe="a:pureftpd:pure-ftpd", ostype="Unix"),
        rule(r"FileZilla Server(?: version)? ([\d][\w.]*(?: beta)?)", "FileZilla ftpd", "$1",
             cpe="a:filezilla-project:filezilla_server", ostype="Windows"),
        rule(r"Microsoft FTP Service", "Microsoft ftpd",
             cpe="a:microsoft:internet_information_services", ostype="Windows"),
        rule(r"Serv-U FTP Server v([\w.]+)", "Serv-U ftpd", "$1",
             cpe="a:solarwinds:serv-u", ostype="Windows"),
        rule(r"FTP server \(MikroTik ([\w.]+)\)", "MikroTik router ftpd", "$1",
             ostype="RouterOS"),
        rule(r"bftpd ([\w.]+)", "bftpd", "$1", cpe="a:bftpd_project:bftpd", ostype="Linux"),
        rule(r"WS_FTP Server ([\w.]+)", "WS_FTP Server", "$1", ostype="Windows"),
        rule(r"Titan FTP Server ([\d.]+)", "Titan FTP Server", "$1", ostype="Windows"),
        rule(r"Wing FTP Server", "Wing FTP Server"),
        rule(r"FTP server \(Version ([\w./-]+)\)", "BSD-derived ftpd", "$1", confidence=8),
    ),
    # SMTP greeting
    "smtp": (
        rule(r"ESMTP Postfix (\d[\w.]*)(?: \(([^)]*)\))?", "Postfix smtpd", "$1",
             cpe="a:postfix:postfix", ostype="Unix"),
        rule(r"ESMTP Postfix", "Postfix smtpd", cpe="a:postfix:postfix", ostype="Unix"),
        rule(r"ESMTP Exim (\d[\w.]*)", "Exim smtpd", "$1", cpe="a:exim:exim", ostype="Unix"),
        rule(r"ESMTP Sendmail (\d[\w.]*)(?:/(\d[\w.]*))?", "Sendmail", "$1",
             cpe="a:sendmail:sendmail", ostype="Unix"),
        rule(r"Microsoft ESMTP MAIL Service(?:, Version: ([\d.]+))?", "Microsoft ESMTP", "$1",
             cpe="a:microsoft:exchange_server", ostype="Windows"),
        rule(r"ESMTP OpenSMTPD", "OpenSMTPD", cpe="a:openbsd:opensmtpd", ostype="Unix"),
        rule(r"Haraka(?:/([\d.]+))?", "Haraka smtpd", "$1"),
        rule(r"ESMTP MDaemon ([\d.]+)", "MDaemon smtpd", "$1", ostype="Windows"),
        rule(r"Kerio Connect ([\d.]+)", "Kerio Connect smtpd", "$1"),
        rule(r"\bqmail\b", "netqmail smtpd", cpe="a:qmail:qmail", ostype="Unix"),
        rule(r"ESMTP Courier", "Courier smtpd"),
        rule(r"Lotus Domino", "Lotus Domino smtpd"),
    ),
    "pop3": (
        rule(r"Dovecot", "Dovecot pop3d", cpe="a:dovecot:dovecot"),
        rule(r"Cyrus POP3 (?:server )?v?([\d][\w.-]*)", "Cyrus pop3d", "$1",
             cpe="a:cmu:cyrus_imap_server"),
        rule(r"Qpopper \(version ([\w.]+)\)", "Qpopper", "$1"),
        rule(r"Microsoft Exchange.*?POP3.*?version ([\d.]+)", "Microsoft Exchange pop3d", "$1",
             ostype="Windows"),
        rule(r"MDaemon ([\d.]+)", "MDaemon pop3d", "$1", ostype="Windows"),
        rule(r"Courier", "Courier pop3d"),
    ),
    "imap": (
        rule(r"Dovecot", "Dovecot imapd", cpe="a:dovecot:dovecot"),
        rule(r"Cyrus IMAP4? (?:server )?v?([\d][\w.-]*)", "Cyrus imapd", "$1",
             cpe="a:cmu:cyrus_imap_server"),
        rule(r"Courier-IMAP", "Courier Imapd", cpe="a:double_precision_incorporated:courier-imap"),
        rule(r"Microsoft Exchange", "Microsoft Exchange imapd", ostype="Windows"),
        rule(r"IMAP4rev1 (?:Service )?(20\d\d[\w.]+)", "UW imapd", "$1"),
        rule(r"Zimbra", "Zimbra imapd"),
    ),
    # HTTP Server header
    "http-server": (
        rule(r"^nginx(?:/([\d][\w.]*))?", "nginx", "$1", cpe="a:f5:nginx"),
        rule(r"^openresty(?:/([\d][\w.]*))?", "OpenResty web app server", "$1",
             cpe="a:openresty:openresty"),
        rule(r"^Tengine(?:/([\d][\w.]*))?", "Tengine httpd", "$1"),
        rule(r"^Apache/(\d[\w.]*)(?: \(([^)]+)\))?", "Apache httpd", "$1", "$2",
             cpe="a:apache:http_server"),
        rule(r"^Apache$", "Apache httpd", cpe="a:apache:http_server"),
        rule(r"^Apache-Coyote/([\w.]+)", "Apache Tomcat/Coyote JSP engine", "$1",
             cpe="a:apache:coyote_http_connector"),
        rule(r"^Microsoft-IIS/([\w.]+)", "Microsoft IIS httpd", "$1",
             cpe="a:microsoft:internet_information_services", ostype="Windows"),
        rule(r"^Microsoft-HTTPAPI/([\w.]+)", "Microsoft HTTPAPI httpd", "$1",
             ostype="Windows"),
        rule(r"^lighttpd(?:/([\d][\w.]*))?", "lighttpd", "$1", cpe="a:lighttpd:lighttpd"),
        rule(r"^Caddy", "Caddy httpd", cpe="a:caddyserver:caddy"),
        rule(r"^LiteSpeed", "LiteSpeed httpd", cpe="a:litespeedtech:litespeed_web_server"),
        rule(r"^Jetty\(([\w.-]+)\)", "Jetty", "$1", cpe="a:eclipse:jetty"),
        rule(r"^gunicorn(?:/([\w.]+))?", "Gunicorn", "$1", cpe="a:gunicorn:gunicorn"),
        rule(r"^Werkzeug/([\w.]+)(?: Python/([\w.]+))?",
             "Werkzeug httpd", "$1", lambda m: f"Python {m.group(2)}" if m.group(2) else None,
             cpe="a:palletsprojects:werkzeug"),
        rule(r"^uvicorn", "Uvicorn"),
        rule(r"^hypercorn", "Hypercorn"),
        rule(r"^Python/([\w.]+) aiohttp/([\w.]+)", "aiohttp", "$2",
             lambda m: f"Python {m.group(1)}", cpe="a:aiohttp:aiohttp"),
        rule(r"^SimpleHTTP/([\w.]+) Python/([\w.]+)", "SimpleHTTPServer", "$1",
             lambda m: f"Python {m.group(2)}"),
        rule(r"^BaseHTTP/([\w.]+) Python/([\w.]+)", "BaseHTTPServer", "$1",
             lambda m: f"Python {m.group(2)}"),
        rule(r"^TornadoServer/([\w.]+)", "Tornado httpd", "$1", cpe="a:tornadoweb:tornado"),
        rule(r"^CherryPy/([\w.]+)", "CherryPy httpd", "$1", cpe="a:cherrypy:cherrypy"),
        rule(r"^WEBrick/([\w.]+)", "WEBrick httpd", "$1", cpe="a:ruby-lang:webrick"),
        rule(r"^Kestrel", "Kestrel httpd", cpe="a:microsoft:kestrel"),
        rule(r"^Boa/([\w.]+)", "Boa HTTPd", "$1", cpe="a:boa:boa"),
        rule(r"^GoAhead-Webs", "GoAhead WebServer", cpe="a:embedthis:goahead"),
        rule(r"^mini_httpd/([\w.]+)", "mini_httpd", "$1", cpe="a:acme:mini_httpd"),
        rule(r"^thttpd/([\w.]+)", "thttpd", "$1", cpe="a:acme:thttpd"),
        rule(r"^RomPager/([\w.]+)", "Allegro RomPager", "$1", cpe="a:allegrosoft:rompager"),
        rule(r"^squid/([\w.]+)", "Squid http proxy", "$1", cpe="a:squid-cache:squid",
             name="http-proxy"),
        rule(r"^CouchDB/([\w.]+)", "CouchDB httpd", "$1", cpe="a:apache:couchdb"),
        rule(r"^Docker/([\w.-]+)", "Docker", "$1", cpe="a:docker:engine", name="docker"),
        rule(r"^MinIO", "MinIO", cpe="a:minio:minio"),
        rule(r"^cloudflare", "cloudflare"),
        rule(r"^AmazonS3", "Amazon S3"),
        rule(r"^[Ee]nvoy", "Envoy proxy", cpe="a:envoyproxy:envoy"),
        rule(r"^Cowboy", "Cowboy httpd", cpe="a:ninenines:cowboy"),
        rule(r"^([A-Za-z][\w.-]*)/(\d[\w.]*)", "$1", "$2", confidence=8),
    ),
    # DNS version.bind (CH TXT)
    "dns": (
        rule(r"^dnsmasq-([\w.]+)", "dnsmasq", "$1", cpe="a:thekelleys:dnsmasq"),
        rule(r"^unbound (\S+)", "Unbound", "$1", cpe="a:nlnetlabs:unbound"),
        rule(r"^PowerDNS Authoritative Server (\S+)", "PowerDNS Authoritative Server", "$1",
             cpe="a:powerdns:authoritative"),
        rule(r"^PowerDNS Recursor (\S+)", "PowerDNS Recursor", "$1", cpe="a:powerdns:recursor"),
        rule(r"^Microsoft DNS ([\d.]+)", "Microsoft DNS", "$1", ostype="Windows"),
        rule(r"^Knot DNS (\S+)", "Knot DNS", "$1", cpe="a:nic:knot_dns"),
        rule(r"^NSD (\S+)", "NLnet Labs NSD", "$1", cpe="a:nlnetlabs:nsd"),
        rule(r"^(9\.\d+\.\d+(?:-[SP]\d+)?)(?:[-\s](\S.*))?", "ISC BIND", "$1", "$2",
             cpe="a:isc:bind"),
    ),
    # SNMP sysDescr: the system, not the agent (the agent comes from sysObjectID)
    "snmp-sysdescr": (
        rule(r"^Linux \S+ (\d[\w.+~-]*)", None, None, lambda m: f"Linux {m.group(1)}",
             ostype="Linux", confidence=0),
        rule(r"Software: Windows .*Version ([\d.]+)", "Microsoft Windows SNMP service", None,
             lambda m: f"Windows {m.group(1)}", ostype="Windows"),
        rule(r"Cisco IOS Software.*?Version ([\w.()]+)", "Cisco SNMP service", None,
             lambda m: f"IOS {m.group(1)}", ostype="IOS"),
        rule(r"^FreeBSD \S+ (\d[\w.-]*)", None, None, lambda m: f"FreeBSD {m.group(1)}",
             ostype="FreeBSD", confidence=0),
        rule(r"^RouterOS", None, ostype="RouterOS", confidence=0),
    ),
    # the version string of a MySQL/MariaDB handshake
    "mysql": (
        rule(r"^5\.5\.5-(\d[\w.]*)-MariaDB(?:-(\S+))?", "MariaDB", "$1", "$2",
             cpe="a:mariadb:mariadb"),
        rule(r"^(\d[\w.]*)-MariaDB(?:-(\S+))?", "MariaDB", "$1", "$2", cpe="a:mariadb:mariadb"),
        rule(r"^(\d+\.\d+\.\d+)(?:-(\S+))?", "MySQL", "$1", "$2", cpe="a:oracle:mysql"),
    ),
    # ntpd's "version=" system variable (mode 6)
    "ntp": (
        rule(r"ntpd ([\w.]+)", "ntpd", "$1", cpe="a:ntp:ntp"),
        rule(r"ntpsec-([\w.]+)", "NTPsec", "$1", cpe="a:ntpsec:ntpsec"),
    ),
    # telnet login banner text
    "telnet": (
        rule(r"User Access Verification", "Cisco router telnetd", ostype="IOS"),
        rule(r"MikroTik", "MikroTik router telnetd", ostype="RouterOS"),
        rule(r"BusyBox", "BusyBox telnetd", cpe="a:busybox:busybox", ostype="Linux"),
        rule(r"Debian GNU/Linux", "Linux telnetd", ostype="Linux"),
        rule(r"Ubuntu", "Linux telnetd", ostype="Linux"),
        rule(r"Microsoft Telnet Service", "Microsoft Windows telnetd", ostype="Windows"),
    ),
}
