"""Daemons for the audit's lab tests, started inside a lab host with configs in a temp dir
(never the system-wide service) and stopped on teardown (the host kills what it started).

To be consolidated with ``portscope.testing.daemons`` (issue 4) once that lands.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from portscope.testing.lab import LabHost

POSTFIX_MASTER_CF = """\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def wait_port(host: LabHost, port: int, timeout: float = 20.0) -> None:
    """Until *port* accepts connections on the lab host (from the root namespace)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.addr4, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{host.addr4}:{port} did not open within {timeout}s")


def start_postfix(host: LabHost, workdir: Path, *, open_relay: bool) -> subprocess.Popen[bytes]:
    """Postfix listening on 25 of *host*: an open relay, or correctly configured."""
    conf = workdir / "postfix"
    queue = workdir / "queue"
    data = workdir / "data"
    workdir.chmod(0o755)  # the postfix user must reach its queue and data directories
    for d in (conf, queue, data):
        d.mkdir(parents=True, exist_ok=True)
    shutil.chown(data, "postfix")
    # the classic mistake: "mynetworks" covering the whole Internet
    restrictions = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
    networks = "0.0.0.0/0" if open_relay else "127.0.0.0/8"
    (conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = {host.addr4}
inet_protocols = ipv4
myhostname = mx.lab.test
mydomain = lab.test
mydestination = $myhostname, localhost
mynetworks = {networks}
smtpd_relay_restrictions = {restrictions}
smtpd_recipient_restrictions =
relayhost =
defer_transports = smtp, relay
smtp_dns_support_level = disabled
maillog_file = {workdir}/maillog
maillog_file_prefixes = {workdir}
smtpd_banner = $myhostname ESMTP Postfix
alias_maps =
alias_database =
local_recipient_maps =
biff = no
""", "utf-8")
    (conf / "master.cf").write_text(POSTFIX_MASTER_CF.replace("1000?", "1000"), "utf-8")
    log = open(workdir / "postfix.out", "wb")  # noqa: SIM115 - the daemon writes it
    proc = host.popen(["/usr/sbin/postfix", "-c", str(conf), "start-fg"],
                      stdout=log, stderr=subprocess.STDOUT)
    wait_port(host, 25)
    return proc


def stop_postfix(host: LabHost, workdir: Path) -> None:
    host.run(["/usr/sbin/postfix", "-c", str(workdir / "postfix"), "stop"], check=False)
