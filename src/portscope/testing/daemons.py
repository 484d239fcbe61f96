"""Real daemons from Debian's packages, started inside lab hosts for lab tests and benchmarks.

Each ``start_*`` function writes its own configuration into a fresh temporary directory,
starts the daemon in the foreground inside a :class:`~portscope.testing.lab.LabHost`
(never the machine's own service, never its config), waits until it answers, and returns a
:class:`Daemon` whose :meth:`~Daemon.stop` ends it and removes the directory. Daemons that
insist on fixed paths (``/run/sshd``, ``/var/spool/postfix`` ...) run in a private mount
namespace where those paths are bind mounts of the temporary directory, so nothing on the
machine is touched::

    with Lab() as lab:
        host = lab.add_host()
        with start_sshd(host) as sshd:
            ...  # ssh on host.addr4:22

:func:`redirect` makes a daemon also answer on an unusual port (an iptables REDIRECT inside
the host), which is how tests show detection that does not trust the port number.
:func:`make_certificate` writes a self-signed certificate (``cryptography``) for the TLS
daemons.

Two styles live here: the ``start_*`` functions of the service-detection tests return a
:class:`Daemon` (versions, log, ``stop()``; ``start_dnsmasq_daemon`` and
``start_snmpd_daemon`` for those two), while ``start_dnsmasq``, ``start_ntp`` and
``start_snmpd`` (raw-engine UDP tests) return the process, killed with the host. Add new
daemons as new functions.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from portscope.testing.lab import LabError, LabHost, tool


class DaemonError(LabError):
    """A lab daemon could not be started."""


@dataclass
class Daemon:
    """A daemon running inside a lab host."""

    name: str
    host: LabHost
    tcp: list[int] = field(default_factory=list)
    udp: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    workdir: Path | None = None
    version: str | None = None  # the exact upstream version of the package
    package_version: str | None = None  # the Debian package version
    extra: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    def log(self) -> str:
        """The daemon's log (for failure messages)."""
        if self.workdir is None:
            return ""
        out = []
        for name in ("stderr.log", "daemon.log"):
            p = self.workdir / name
            with contextlib.suppress(OSError):
                out.append(p.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# helpers


def package_version(package: str) -> str | None:
    """The installed Debian version of *package* (``1:9.2p1-2+deb12u3``)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def upstream_version(package: str) -> str | None:
    """``1:9.2p1-2+deb12u3`` -> ``9.2p1``."""
    v = package_version(package)
    if v is None:
        return None
    v = v.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def require(*paths: str) -> None:
    missing = [p for p in paths if not (os.path.exists(p) if p.startswith("/") else tool(p))]
    if missing:
        raise DaemonError(f"not installed: {', '.join(missing)} (scripts/debian-packages.txt)")


def _workdir(name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"portscope-{name}-"))
    d.chmod(0o755)
    return d


def _chown(path: Path, user: str, group: str | None = None) -> None:
    shutil.chown(path, user, group or pwd.getpwnam(user).pw_gid)


def private_mounts(binds: dict[str, Path], argv: Sequence[str]) -> list[str]:
    """argv running *argv* in a private mount namespace where each key of *binds* (a
    path on the machine) is a bind mount of its value (a directory we own)."""
    script = "set -e\n"
    for target, source in binds.items():
        script += f"mkdir -p {shlex.quote(target)} 2>/dev/null || true\n"
        script += f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}\n"
    script += "exec " + shlex.join(argv) + "\n"
    return [tool("unshare") or "unshare", "--mount", "--propagation", "private",
            "sh", "-c", script]


def _popen(daemon: Daemon, argv: Sequence[str], *, env: dict[str, str] | None = None
           ) -> subprocess.Popen[Any]:
    assert daemon.workdir is not None
    err = open(daemon.workdir / "stderr.log", "ab")  # noqa: SIM115 - owned by the process
    try:
        proc = daemon.host.popen(list(argv), stdout=err, stderr=subprocess.STDOUT,
                                 env={**os.environ, **(env or {})})
    finally:
        err.close()
    daemon.procs.append(proc)
    return proc


def wait_tcp(daemon: Daemon, port: int, timeout: float = 20.0) -> None:
    """Wait until *port* on the lab host accepts connections (from the root namespace)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in daemon.procs:
            if proc.poll() is not None:
                raise DaemonError(f"{daemon.name} exited ({proc.returncode}): {daemon.log()}")
        with contextlib.suppress(OSError), socket.create_connection(
                (daemon.host.addr4, port), timeout=1):
            return
        time.sleep(0.05)
    raise DaemonError(f"{daemon.name} did not listen on {port}/tcp within {timeout}s: "
                      f"{daemon.log()}")


def wait_udp(daemon: Daemon, port: int, timeout: float = 20.0) -> None:
    """Wait until a socket is bound to *port*/udp inside the lab host."""
    deadline = time.monotonic() + timeout
    ss = tool("ss") or "ss"
    while time.monotonic() < deadline:
        for proc in daemon.procs:
            if proc.poll() is not None:
                raise DaemonError(f"{daemon.name} exited ({proc.returncode}): {daemon.log()}")
        out = daemon.host.run([ss, "-lunH", f"sport = :{port}"], check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise DaemonError(f"{daemon.name} did not bind {port}/udp within {timeout}s: "
                      f"{daemon.log()}")


def redirect(host: LabHost, port: int, to_port: int, proto: str = "tcp") -> None:
    """Make *port* of the lab host reach its service on *to_port* (iptables REDIRECT in
    the host's nat table, IPv4): a daemon on an unusual port without reconfiguring it."""
    host.iptables("-t", "nat", "-A", "PREROUTING", "-p", proto, "--dport", str(port),
                  "-j", "REDIRECT", "--to-ports", str(to_port))


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    sha256: str
    not_after: datetime


def make_certificate(directory: Path, *, common_name: str = "lab.example",
                     dns_names: Sequence[str] = ("lab.example", "intranet.local"),
                     ip_addresses: Sequence[str] = ("10.1.2.3",), days: int = 30,
                     key_bits: int = 2048) -> Certificate:
    """A self-signed RSA certificate (with SANs, among them private names, as appliances
    often have) written as PEM files into *directory*."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "portscope lab")])
    now = datetime.now(UTC).replace(microsecond=0)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o640)
    return Certificate(cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex(),
                       cert.not_valid_after_utc)


def _copy_cert(cert: Certificate, workdir: Path, owner: str | None = None) -> tuple[Path, Path]:
    c, k = workdir / "tls-cert.pem", workdir / "tls-key.pem"
    shutil.copyfile(cert.cert, c)
    shutil.copyfile(cert.key, k)
    k.chmod(0o600)
    if owner:
        _chown(c, owner)
        _chown(k, owner)
    return c, k


@contextlib.contextmanager
def _starting(daemon: Daemon) -> Iterator[Daemon]:
    """Stop and clean up if starting fails."""
    try:
        yield daemon
    except BaseException:
        daemon.stop()
        raise


# --------------------------------------------------------------------------------------
# the daemons


def start_sshd(host: LabHost, port: int = 22) -> Daemon:
    """OpenSSH's sshd with fresh host keys."""
    require("/usr/sbin/sshd", "ssh-keygen")
    d = Daemon("sshd", host, tcp=[port], workdir=_workdir("sshd"),
               version=upstream_version("openssh-server"),
               package_version=package_version("openssh-server"))
    with _starting(d):
        assert d.workdir is not None
        keys = []
        for kind in ("ed25519", "ecdsa"):
            path = d.workdir / f"ssh_host_{kind}_key"
            subprocess.run([tool("ssh-keygen") or "ssh-keygen", "-q", "-t", kind, "-N", "",
                            "-f", str(path)], check=True, capture_output=True, timeout=60)
            keys.append(path)
        privsep = d.workdir / "privsep"
        privsep.mkdir(mode=0o755)
        conf = d.workdir / "sshd_config"
        conf.write_text("\n".join([
            f"Port {port}", "ListenAddress 0.0.0.0", *(f"HostKey {k}" for k in keys),
            f"PidFile {d.workdir}/sshd.pid", "UsePAM no", "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no", "StrictModes no", "UseDNS no",
            "LogLevel ERROR", ""]))
        argv = private_mounts({"/run/sshd": privsep},
                              ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)])
        _popen(d, argv)
        wait_tcp(d, port)
    return d


_POSTFIX_MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def start_postfix(host: LabHost, cert: Certificate | None = None, *,
                  banner_version: bool = True) -> Daemon:
    """Postfix's master with smtpd on 25 and submission on 587 (STARTTLS with *cert*).
    With *banner_version* the greeting carries ``$mail_version`` (admins do that; by
    default Postfix does not say its version)."""
    require("/usr/lib/postfix/sbin/master", "/usr/sbin/postconf")
    d = Daemon("postfix", host, tcp=[25, 587], workdir=_workdir("postfix"),
               version=upstream_version("postfix"), package_version=package_version("postfix"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        etc, spool, data = w / "etc", w / "spool", w / "data"
        for p in (etc, spool, data):
            p.mkdir()
        _chown(data, "postfix")
        for sub in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                    "incoming", "private", "saved", "trace"):
            (spool / sub).mkdir(mode=0o700)
            _chown(spool / sub, "postfix")
        for sub, mode in (("maildrop", 0o730), ("public", 0o710)):
            (spool / sub).mkdir()
            (spool / sub).chmod(mode)
            _chown(spool / sub, "postfix", "postdrop")
        (spool / "pid").mkdir(mode=0o755)
        banner = "$myhostname ESMTP $mail_name" + (" $mail_version" if banner_version else "") \
            + " (Debian/GNU)"
        lines = [
            "compatibility_level = 3.6", f"queue_directory = {spool}",
            f"data_directory = {data}", "mail_owner = postfix", "setgid_group = postdrop",
            "myhostname = mail.lab.example", "mydestination =", "inet_interfaces = all",
            "inet_protocols = ipv4", f"smtpd_banner = {banner}", "alias_maps =",
            "alias_database =", f"maillog_file = {w}/daemon.log",
            f"maillog_file_prefixes = {w}",
            "smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination",
            "mynetworks = 127.0.0.0/8", "disable_vrfy_command = no",
        ]
        if cert is not None:
            c, k = _copy_cert(cert, w)
            lines += [f"smtpd_tls_cert_file = {c}", f"smtpd_tls_key_file = {k}",
                      "smtpd_tls_security_level = may", "smtpd_sasl_auth_enable = no"]
        (etc / "main.cf").write_text("\n".join(lines) + "\n")
        (etc / "master.cf").write_text(_POSTFIX_MASTER)
        _popen(d, ["/usr/lib/postfix/sbin/master", "-c", str(etc), "-d"],
               env={"MAIL_CONFIG": str(etc)})
        wait_tcp(d, 25)
        wait_tcp(d, 587)
    return d


def start_vsftpd(host: LabHost, cert: Certificate | None = None, *, port: int = 21,
                 anonymous: bool = True) -> Daemon:
    """vsftpd (anonymous read-only, AUTH TLS with *cert*)."""
    require("/usr/sbin/vsftpd")
    d = Daemon("vsftpd", host, tcp=[port], workdir=_workdir("vsftpd"),
               version=upstream_version("vsftpd"), package_version=package_version("vsftpd"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        root, empty = w / "ftproot", w / "empty"
        root.mkdir(mode=0o555)
        (root / "README").write_text("portscope lab\n")
        empty.mkdir(mode=0o555)
        lines = [
            "listen=YES", "listen_ipv6=NO", f"listen_port={port}", "background=NO",
            f"anonymous_enable={'YES' if anonymous else 'NO'}", "no_anon_password=YES",
            f"anon_root={root}", "local_enable=NO", "write_enable=NO",
            f"secure_chroot_dir={empty}", "xferlog_enable=NO", "seccomp_sandbox=NO",
            f"vsftpd_log_file={w}/daemon.log", "dual_log_enable=NO",
        ]
        if cert is not None:
            c, k = _copy_cert(cert, w)
            lines += ["ssl_enable=YES", f"rsa_cert_file={c}", f"rsa_private_key_file={k}",
                      "allow_anon_ssl=YES", "force_local_logins_ssl=NO",
                      "force_local_data_ssl=NO", "ssl_tlsv1=YES", "ssl_sslv2=NO",
                      "ssl_sslv3=NO", "require_ssl_reuse=NO"]
        conf = w / "vsftpd.conf"
        conf.write_text("\n".join(lines) + "\n")
        _popen(d, ["/usr/sbin/vsftpd", str(conf)])
        wait_tcp(d, port)
    return d


def start_nginx(host: LabHost, cert: Certificate | None = None, *, http_port: int = 80,
                https_port: int = 443, legacy_tls_port: int | None = 8443,
                title: str = "portscope lab") -> Daemon:
    """nginx serving a page on *http_port*; with *cert*, HTTPS on *https_port* (modern
    defaults) and on *legacy_tls_port* (TLS 1.0-1.2 with every cipher: what an old
    appliance offers)."""
    require("/usr/sbin/nginx")
    ports = [http_port] + ([https_port] if cert else []) + \
        ([legacy_tls_port] if cert and legacy_tls_port else [])
    d = Daemon("nginx", host, tcp=ports, workdir=_workdir("nginx"),
               version=upstream_version("nginx"), package_version=package_version("nginx"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        www = w / "www"
        www.mkdir()
        (www / "index.html").write_text(
            f"<!DOCTYPE html><html><head><title>{title}</title></head>"
            "<body><h1>portscope lab</h1></body></html>\n")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (w / sub).mkdir()
        servers = [f"server {{ listen {http_port}; root {www}; }}"]
        if cert is not None:
            c, k = _copy_cert(cert, w)
            servers.append(f"server {{ listen {https_port} ssl; root {www}; "
                           f"ssl_certificate {c}; ssl_certificate_key {k}; }}")
            if legacy_tls_port:
                servers.append(
                    f"server {{ listen {legacy_tls_port} ssl; root {www}; "
                    f"ssl_certificate {c}; ssl_certificate_key {k}; "
                    "ssl_protocols TLSv1 TLSv1.1 TLSv1.2; "
                    "ssl_ciphers ALL:@SECLEVEL=0; }")
        conf = w / "nginx.conf"
        conf.write_text(
            f"pid {w}/nginx.pid;\nerror_log {w}/daemon.log;\nworker_processes 1;\n"
            "events { worker_connections 256; }\n"
            "http {\n  access_log off;\n"
            f"  client_body_temp_path {w}/body;\n  proxy_temp_path {w}/proxy;\n"
            f"  fastcgi_temp_path {w}/fastcgi;\n  uwsgi_temp_path {w}/uwsgi;\n"
            f"  scgi_temp_path {w}/scgi;\n  default_type text/html;\n"
            + "".join(f"  {s}\n" for s in servers) + "}\n")
        _popen(d, ["/usr/sbin/nginx", "-p", str(w), "-c", str(conf), "-g", "daemon off;"])
        for p in ports:
            wait_tcp(d, p)
    return d


def start_dnsmasq_daemon(host: LabHost, *, port: int = 53) -> Daemon:
    """dnsmasq answering for ``lab.example`` (no upstream servers: no recursion)."""
    require("/usr/sbin/dnsmasq")
    d = Daemon("dnsmasq", host, tcp=[port], udp=[port], workdir=_workdir("dnsmasq"),
               version=upstream_version("dnsmasq-base") or upstream_version("dnsmasq"),
               package_version=package_version("dnsmasq-base"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        _popen(d, ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                   "--no-resolv", "--no-hosts", f"--port={port}", "--bind-interfaces",
                   f"--listen-address={host.addr4}", f"--pid-file={w}/dnsmasq.pid",
                   f"--address=/lab.example/{host.addr4}", "--user=dnsmasq",
                   f"--log-facility={w}/daemon.log"])
        wait_udp(d, port)
        wait_tcp(d, port)
    return d


def start_snmpd_daemon(host: LabHost, *, community: str = "public",
                       ports: Sequence[int] = (161,), sys_name: str = "lab-host") -> Daemon:
    """Net-SNMP's snmpd with a read-only *community* for the whole tree."""
    require("/usr/sbin/snmpd")
    d = Daemon("snmpd", host, udp=list(ports), workdir=_workdir("snmpd"),
               version=upstream_version("snmpd"), package_version=package_version("snmpd"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        conf = w / "snmpd.conf"
        conf.write_text(
            "agentAddress " + ",".join(f"udp:{p}" for p in ports) + "\n"
            f"rocommunity {community} default\n"
            f"sysName {sys_name}\nsysLocation portscope lab\nsysContact root@lab.example\n")
        persist = w / "persist"
        persist.mkdir()
        _popen(d, ["/usr/sbin/snmpd", "-f", "-C", "-c", str(conf), "-Lf", str(w / "daemon.log"),
                   "-p", str(w / "snmpd.pid"), "-M", "/nonexistent", "-m", ""],
               env={"SNMP_PERSISTENT_DIR": str(persist), "MIBS": ""})
        for p in ports:
            wait_udp(d, p)
    return d


def start_redis(host: LabHost, *, port: int = 6379, password: str | None = None) -> Daemon:
    """redis-server with no persistence (and no password unless given)."""
    require("/usr/bin/redis-server")
    d = Daemon("redis", host, tcp=[port], workdir=_workdir("redis"),
               version=upstream_version("redis-server"),
               package_version=package_version("redis-server"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        argv = ["/usr/bin/redis-server", "--port", str(port), "--bind", "0.0.0.0",
                "--protected-mode", "no", "--dir", str(w), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", str(w / "daemon.log"),
                "--pidfile", str(w / "redis.pid")]
        if password:
            argv += ["--requirepass", password]
        _popen(d, argv)
        wait_tcp(d, port)
    return d


def postgres_bin() -> Path | None:
    base = Path("/usr/lib/postgresql")
    if not base.is_dir():
        return None
    versions = sorted((p for p in base.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return versions[-1] / "bin" if versions else None


def start_postgresql(host: LabHost, cert: Certificate | None = None, *, port: int = 5432,
                     auth: str = "trust") -> Daemon:
    """A throw-away PostgreSQL cluster (``initdb`` in a temporary directory) listening on
    the lab host; ``pg_hba`` lets the lab network in with *auth* (``trust`` is the
    misconfiguration the audit looks for; ``scram-sha-256`` the safe one). The machine's
    own PostgreSQL is not touched (own data directory, own socket directory)."""
    bindir = postgres_bin()
    if bindir is None:
        raise DaemonError("not installed: postgresql (scripts/debian-packages.txt)")
    major = bindir.parent.name
    d = Daemon("postgresql", host, tcp=[port], workdir=_workdir("postgresql"),
               version=None, package_version=package_version(f"postgresql-{major}"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        _chown(w, "postgres")
        data = w / "data"
        runuser = tool("runuser") or "runuser"
        subprocess.run([runuser, "-u", "postgres", "--", str(bindir / "initdb"), "-D", str(data),
                        "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        with open(data / "pg_hba.conf", "a") as fh:
            fh.write(f"host all all 0.0.0.0/0 {auth}\n")
        opts = ["-c", "listen_addresses=*", "-c", f"port={port}",
                "-c", f"unix_socket_directories={w}", "-c", "fsync=off",
                "-c", "logging_collector=off"]
        if cert is not None:
            c, k = _copy_cert(cert, w, owner="postgres")
            opts += ["-c", "ssl=on", "-c", f"ssl_cert_file={c}", "-c", f"ssl_key_file={k}"]
        _popen(d, [runuser, "-u", "postgres", "--", str(bindir / "postgres"), "-D", str(data),
                   *opts])
        wait_tcp(d, port, timeout=60)
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
        m = re.search(r"\(PostgreSQL\) (\S+)", out)
        d.version = m.group(1) if m else None
    return d


# --------------------------------------------------------------------------------------
# the whole service lab


@dataclass(frozen=True)
class Expect:
    """What a correct service detection says about one port."""

    name: str
    product: str
    version: str | None
    tunnel: str | None = None


UNUSUAL_TCP = {8080: 22, 2222: 25, 3306: 21, 5900: 80, 993: 443, 1433: 6379, 3389: 5432,
               8053: 53}
"""Unusual port -> the daemon's standard port (an ssh on the web proxy port, an smtp on
the ssh-alt port, a web server on VNC's, HTTPS on IMAPS' ...)."""
UNUSUAL_UDP = {1161: 161, 5353: 53}


@dataclass
class ServiceLab:
    """Every lab daemon on one host, on standard and unusual ports, with the answers a
    correct detection gives (from the installed packages' versions)."""

    host: LabHost
    cert: Certificate
    daemons: list[Daemon]
    expect: dict[tuple[str, int], Expect]

    @property
    def tcp_ports(self) -> list[int]:
        return sorted(p for proto, p in self.expect if proto == "tcp")

    @property
    def udp_ports(self) -> list[int]:
        return sorted(p for proto, p in self.expect if proto == "udp")

    def by_name(self, name: str) -> Daemon:
        return next(d for d in self.daemons if d.name == name)

    def stop(self) -> None:
        for d in reversed(self.daemons):
            d.stop()
        shutil.rmtree(self.cert.cert.parent, ignore_errors=True)

    def __enter__(self) -> ServiceLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_service_lab(host: LabHost) -> ServiceLab:
    """sshd, postfix, vsftpd, nginx (HTTP, HTTPS, legacy TLS), dnsmasq, snmpd, redis and
    postgresql on *host*, plus iptables redirects from unusual ports."""
    cert = make_certificate(Path(tempfile.mkdtemp(prefix="portscope-cert-")))
    daemons: list[Daemon] = []
    try:
        starters: list[Callable[[], Daemon]] = [
            lambda: start_sshd(host), lambda: start_postfix(host, cert),
            lambda: start_vsftpd(host, cert), lambda: start_nginx(host, cert),
            lambda: start_dnsmasq_daemon(host), lambda: start_snmpd_daemon(host),
            lambda: start_redis(host),
            lambda: start_postgresql(host, cert)]
        for start in starters:
            daemons.append(start())
        for unusual, standard in UNUSUAL_TCP.items():
            redirect(host, unusual, standard)
        for unusual, standard in UNUSUAL_UDP.items():
            redirect(host, unusual, standard, "udp")
    except BaseException:
        for d in daemons:
            d.stop()
        shutil.rmtree(cert.cert.parent, ignore_errors=True)
        raise
    v = {d.name: (d.version or "").split("+")[0] or None for d in daemons}
    std: dict[tuple[str, int], Expect] = {
        ("tcp", 22): Expect("ssh", "OpenSSH", v["sshd"]),
        ("tcp", 25): Expect("smtp", "Postfix smtpd", v["postfix"]),
        ("tcp", 587): Expect("smtp", "Postfix smtpd", v["postfix"]),
        ("tcp", 21): Expect("ftp", "vsftpd", v["vsftpd"]),
        ("tcp", 80): Expect("http", "nginx", v["nginx"]),
        ("tcp", 443): Expect("https", "nginx", v["nginx"], "ssl"),
        ("tcp", 8443): Expect("https", "nginx", v["nginx"], "ssl"),
        ("tcp", 53): Expect("domain", "dnsmasq", v["dnsmasq"]),
        ("udp", 53): Expect("domain", "dnsmasq", v["dnsmasq"]),
        ("udp", 161): Expect("snmp", "net-snmp", v["snmpd"]),
        ("tcp", 6379): Expect("redis", "Redis key-value store", v["redis"]),
        ("tcp", 5432): Expect("postgresql", "PostgreSQL DB", v["postgresql"]),
    }
    expect = dict(std)
    for unusual, standard in UNUSUAL_TCP.items():
        expect[("tcp", unusual)] = std[("tcp", standard)]
    for unusual, standard in UNUSUAL_UDP.items():
        expect[("udp", unusual)] = std[("udp", standard)]
    return ServiceLab(host, cert, daemons, expect)

# --------------------------------------------------------------------------------------
# daemons for the raw engine's UDP tests (return the process)


def _exe(name: str, *paths: str) -> str:
    found = shutil.which(name) or next((p for p in paths if Path(p).exists()), None)
    if found is None:
        raise LabError(f"{name} is not installed (see scripts/debian-packages.txt)")
    return found


def _wait_udp(host: LabHost, port: int, proc: subprocess.Popen[bytes], what: str,
              timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"{what} exited with {proc.returncode}")
        out = host.run(["ss", "-lnu", f"sport = :{port}"], check=False).stdout
        if f":{port} " in out or f":{port}\n" in out:
            return
        time.sleep(0.05)
    raise LabError(f"{what} did not bind UDP port {port} within {timeout}s")


def _tmpdir(host: LabHost, what: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"pslab-{what}-"))
    # removed with the host's lab object, or at interpreter exit at the latest
    weakref.finalize(host, shutil.rmtree, str(d), True)
    return d


def start_dnsmasq(host: LabHost, *, port: int = 53) -> subprocess.Popen[bytes]:
    """dnsmasq as an authoritative-only DNS server (no upstream, no DHCP) answering
    ``lab.test`` and version.bind."""
    exe = _exe("dnsmasq", "/usr/sbin/dnsmasq")
    d = _tmpdir(host, "dnsmasq")
    conf = d / "dnsmasq.conf"
    conf.write_text(
        f"port={port}\nno-resolv\nno-hosts\nno-poll\nbind-interfaces\nlisten-address={host.addr4}\n"
        f"listen-address={host.addr6}\nlisten-address=127.0.0.1\n"
        "address=/lab.test/198.18.255.1\nuser=root\npid-file=\n")
    proc = host.popen([exe, "--keep-in-foreground", "--conf-file=" + str(conf),
                       "--log-facility=-"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    _wait_udp(host, port, proc, "dnsmasq")
    return proc


def start_ntp(host: LabHost) -> subprocess.Popen[bytes]:
    """chronyd serving time from its local clock (``local stratum 10``) without touching
    the system clock (``-x``)."""
    exe = _exe("chronyd", "/usr/sbin/chronyd")
    d = _tmpdir(host, "chrony")
    conf = d / "chrony.conf"
    conf.write_text(
        "local stratum 10\nallow all\nport 123\ncmdport 0\n"
        f"driftfile {d}/drift\npidfile {d}/chronyd.pid\n")
    proc = host.popen([exe, "-d", "-x", "-f", str(conf)], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    _wait_udp(host, 123, proc, "chronyd")
    return proc


def start_snmpd(host: LabHost, *, community: str = "public") -> subprocess.Popen[bytes]:
    """snmpd with a read-only community, on UDP 161 over IPv4 and IPv6."""
    exe = _exe("snmpd", "/usr/sbin/snmpd")
    d = _tmpdir(host, "snmpd")
    conf = d / "snmpd.conf"
    conf.write_text(f"rocommunity {community} default\nrocommunity6 {community} default\n"
                    "sysDescr portscope lab snmpd\nsysLocation lab\n")
    proc = host.popen([exe, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(d / "snmpd.pid"),
                       "udp:161", "udp6:161"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_udp(host, 161, proc, "snmpd")
    return proc


def udp_query(address: str, port: int, payload: bytes, timeout: float = 2.0) -> bytes | None:
    """Send one datagram from the root namespace to a lab address; the reply or None."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, (address, port))
        try:
            return s.recv(65535)
        except OSError:
            return None


# --------------------------------------------------------------------------------------
# more daemons (MariaDB, Samba, memcached, OpenLDAP): each with its own temporary
# directory for data, sockets, pid and lock files; the machine's own instances (and their
# /etc configuration) are never read or touched


def start_mariadb(host: LabHost, *, port: int = 3306, remote_user: str | None = "app",
                  password: str = "lab-secret") -> Daemon:
    """A throw-away MariaDB (``mariadb-install-db`` into a temporary datadir, started with
    ``--no-defaults`` so no file under /etc/mysql is read) listening on the lab host.

    With *remote_user* an account ``'<remote_user>'@'%'`` exists (an application account
    reachable from anywhere: the server greets every client with its handshake and
    version). Without it only ``root@localhost`` exists and MariaDB answers remote clients
    with error 1130 (host not allowed) before any handshake."""
    require("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db")
    d = Daemon("mariadb", host, tcp=[port], workdir=_workdir("mariadb"),
               version=upstream_version("mariadb-server"),
               package_version=package_version("mariadb-server"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        _chown(w, "mysql")
        data = w / "data"
        subprocess.run([tool("mariadb-install-db") or "/usr/bin/mariadb-install-db",
                        "--no-defaults", f"--datadir={data}", "--user=mysql",
                        "--auth-root-authentication-method=normal", "--skip-test-db",
                        "--skip-name-resolve"],
                       check=True, capture_output=True, timeout=120)
        argv = ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql",
                f"--port={port}", "--bind-address=0.0.0.0", f"--socket={w}/mysqld.sock",
                f"--pid-file={w}/mysqld.pid", f"--log-error={w}/daemon.log",
                "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
                "--performance-schema=OFF", "--skip-external-locking"]
        if remote_user:
            init = w / "init.sql"
            init.write_text(f"CREATE USER IF NOT EXISTS '{remote_user}'@'%' "
                            f"IDENTIFIED BY '{password}';\n")
            _chown(init, "mysql")
            argv.append(f"--init-file={init}")
        _popen(d, argv)
        wait_tcp(d, port, timeout=60)
        d.extra["socket"] = str(w / "mysqld.sock")
    return d


class GroupDaemon(Daemon):
    """A daemon that forks helpers into its own process group (smbd: notifyd, cleanupd,
    samba-dcerpcd): stopping it also ends the group and waits for it, so no helper writes
    into the temporary directory after it is removed."""

    def stop(self) -> None:
        if self.stopped:
            return
        groups = [p.pid for p in self.procs]
        super().stop()
        deadline = time.monotonic() + 5
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, 9)
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.05)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_samba(host: LabHost, *, netbios_name: str = "LABSMB",
                workgroup: str = "LABGROUP", min_protocol: str | None = None,
                signing: str | None = None, nmbd: bool = True) -> Daemon:
    """Samba's smbd (445 and 139/tcp) and nmbd (137/udp) as a standalone server with one
    read-only share. Every directory Samba writes (private, lock, state, cache, pid,
    ncalrpc, logs) is in the temporary directory. *min_protocol* is ``server min
    protocol`` (``NT1`` turns SMBv1 back on; Samba's default is ``SMB2_02``), *signing*
    ``server signing`` (``mandatory``, ``auto`` ...; Samba's default leaves it off for a
    standalone server)."""
    require("/usr/sbin/smbd", *(["/usr/sbin/nmbd"] if nmbd else []))
    d = GroupDaemon("samba", host, tcp=[445, 139], udp=[137] if nmbd else [],
               workdir=_workdir("samba"), version=upstream_version("samba"),
               package_version=package_version("samba"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        dirs = {k: w / k for k in ("private", "lock", "state", "cache", "pid", "ncalrpc",
                                   "binddns", "share", "log", "usershares", "winbindd")}
        for p in dirs.values():
            p.mkdir(mode=0o755)
        dirs["private"].chmod(0o700)
        (dirs["share"] / "README.txt").write_text("portscope lab share\n")
        lines = [
            "[global]",
            f"netbios name = {netbios_name}", f"workgroup = {workgroup}",
            "server string = portscope lab", "server role = standalone server",
            f"interfaces = {host.addr4}/30", "bind interfaces only = no",
            f"private dir = {dirs['private']}", f"lock directory = {dirs['lock']}",
            f"state directory = {dirs['state']}", f"cache directory = {dirs['cache']}",
            f"pid directory = {dirs['pid']}", f"ncalrpc dir = {dirs['ncalrpc']}",
            f"binddns dir = {dirs['binddns']}", f"usershare path = {dirs['usershares']}",
            f"winbindd socket directory = {dirs['winbindd']}",
            f"log file = {dirs['log']}/log.%m", "logging = file", "log level = 1",
            "passdb backend = tdbsam", "load printers = no", "printing = bsd",
            "printcap name = /dev/null", "disable spoolss = yes", "map to guest = Bad User",
            "smb ports = 445 139", "disable netbios = no", "dns proxy = no",
        ]
        if min_protocol:
            lines.append(f"server min protocol = {min_protocol}")
        if signing:
            lines.append(f"server signing = {signing}")
        lines += ["", "[share]", f"path = {dirs['share']}", "read only = yes",
                  "guest ok = yes", ""]
        conf = w / "smb.conf"
        conf.write_text("\n".join(lines))
        d.extra.update(conf=str(conf), netbios_name=netbios_name, workgroup=workgroup)
        # without --no-process-group: smbd/nmbd make their own process group, and on
        # SIGTERM signal that group, which must not be the test runner's
        common = ["--foreground", "--debug-stdout", "-s", str(conf)]
        _popen(d, ["/usr/sbin/smbd", *common])
        if nmbd:
            _popen(d, ["/usr/sbin/nmbd", *common])
        wait_tcp(d, 445, timeout=60)
        wait_tcp(d, 139, timeout=30)
        if nmbd:
            wait_udp(d, 137, timeout=30)
    return d


def start_memcached(host: LabHost, *, port: int = 11211, udp_port: int | None = None,
                    auth: tuple[str, str] | None = None) -> Daemon:
    """memcached on *port*/tcp (and *udp_port*/udp if given; off by default since 1.5.6)
    as the ``memcache`` user, 16 MB. With *auth* (user, password) the ASCII protocol asks
    for a login first (``-Y``, an auth file in the temporary directory)."""
    require("/usr/bin/memcached")
    d = Daemon("memcached", host, tcp=[port], udp=[udp_port] if udp_port else [],
               workdir=_workdir("memcached"), version=upstream_version("memcached"),
               package_version=package_version("memcached"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        argv = ["/usr/bin/memcached", "-u", "memcache", "-l", "0.0.0.0", "-p", str(port),
                "-U", str(udp_port or 0), "-m", "16", "-c", "256"]
        if auth:
            authfile = w / "auth"
            authfile.write_text(f"{auth[0]}:{auth[1]}\n")
            authfile.chmod(0o600)
            _chown(authfile, "memcache")
            argv += ["-Y", str(authfile)]
        _popen(d, argv)
        wait_tcp(d, port)
        if udp_port:
            wait_udp(d, udp_port)
    return d


def start_slapd(host: LabHost, *, port: int = 389, suffix: str = "dc=lab,dc=example",
                anonymous: bool = True) -> Daemon:
    """OpenLDAP's slapd with a minimal ``slapd.conf`` (core schema, one mdb database under
    *suffix*, a root DN) in the temporary directory, in the foreground (``-d``). Without
    *anonymous*, ``disallow bind_anon`` and ``require authc`` refuse every anonymous
    operation (the root DSE included)."""
    require("/usr/sbin/slapd")
    d = Daemon("slapd", host, tcp=[port], workdir=_workdir("slapd"),
               version=upstream_version("slapd"), package_version=package_version("slapd"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        db = w / "db"
        db.mkdir(mode=0o700)
        lines = ["include /etc/ldap/schema/core.schema", f"pidfile {w}/slapd.pid",
                 f"argsfile {w}/slapd.args", "modulepath /usr/lib/ldap", "moduleload back_mdb"]
        if not anonymous:
            lines += ["disallow bind_anon", "require authc"]
        lines += ["database mdb", "maxsize 10485760", f'suffix "{suffix}"',
                  f'rootdn "cn=admin,{suffix}"', "rootpw lab-secret", f"directory {db}", ""]
        conf = w / "slapd.conf"
        conf.write_text("\n".join(lines))
        d.extra.update(suffix=suffix)
        _popen(d, ["/usr/sbin/slapd", "-d", "0", "-h", f"ldap://0.0.0.0:{port}/",
                   "-f", str(conf)])
        wait_tcp(d, port)
    return d


# --------------------------------------------------------------------------------------
# remote desktops (TigerVNC's Xvnc, xrdp): each in a private mount namespace where the
# fixed paths it writes (/tmp/.X11-unix and /tmp/.X<n>-lock; /etc/xrdp and /run for
# xrdp) are directories of the temporary directory; the machine's X sockets, /etc/xrdp
# keys and pid files are never read or touched


def start_xvnc(host: LabHost, *, display: int = 1, rfb_port: int | None = None,
               password: str | None = None, x11_tcp: bool = False,
               access_control: bool = True, blacklist_threshold: int = 10000) -> Daemon:
    """TigerVNC's Xvnc (an X server with a built-in VNC server) on display :*display*:
    RFB on *rfb_port* (5900 + display by default) of the host's address, security type
    None, or VncAuth with a password file (``tigervncpasswd -f``) when *password* is
    given. With *x11_tcp* the X server also listens on TCP 6000 + display (``-listen
    tcp``); without *access_control* any client may use it (``-ac``), else the X server
    refuses clients without a cookie. /tmp is a private bind mount of the temporary
    directory (the X lock file and unix socket go there).

    Xvnc blacklists an address after *blacklist_threshold* connections that ended before
    authentication (TigerVNC's default is 5, for 10 s: a scanner's few probes already
    count); the default here is high so that tests do not lock each other out."""
    require("/usr/bin/Xtigervnc", *(["/usr/bin/tigervncpasswd"] if password else []))
    rfb = rfb_port if rfb_port is not None else 5900 + display
    d = Daemon("xvnc", host, tcp=[rfb] + ([6000 + display] if x11_tcp else []),
               workdir=_workdir("xvnc"), version=upstream_version("tigervnc-standalone-server"),
               package_version=package_version("tigervnc-standalone-server"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        tmp = w / "tmp"
        tmp.mkdir()
        tmp.chmod(0o1777)
        argv = ["/usr/bin/Xtigervnc", f":{display}", "-rfbport", str(rfb),
                "-interface", host.addr4, "-geometry", "640x480", "-depth", "24",
                "-desktop", "portscope-lab", "-nolisten", "unix",
                "-BlacklistThreshold", str(blacklist_threshold),
                "-SecurityTypes", "VncAuth" if password else "None"]
        if password:
            pwfile = w / "passwd"
            out = subprocess.run(["/usr/bin/tigervncpasswd", "-f"], input=password.encode(),
                                 capture_output=True, timeout=30, check=True).stdout
            pwfile.write_bytes(out)
            pwfile.chmod(0o600)
            argv += ["-PasswordFile", str(pwfile)]
        argv += ["-listen", "tcp"] if x11_tcp else ["-nolisten", "tcp"]
        if not access_control:
            argv.append("-ac")
        d.extra.update(display=display, rfb_port=rfb)
        _popen(d, private_mounts({"/tmp": tmp}, argv))
        wait_tcp(d, rfb)
        if x11_tcp:
            wait_tcp(d, 6000 + display)
    return d


def start_xrdp(host: LabHost, cert: Certificate | None = None, *, port: int = 3389,
               security_layer: str = "negotiate") -> Daemon:
    """xrdp in the foreground (``--nodaemon``) with its own ``xrdp.ini``, fresh RSA keys
    (``xrdp-keygen``) and a certificate (:func:`make_certificate` when none is given) in
    the temporary directory. *security_layer* is xrdp's: ``negotiate`` (TLS or standard
    RDP security, as the client asks), ``tls`` or ``rdp``. No session manager: a client
    gets the login screen at most. /etc/xrdp (for the keys and keymaps xrdp reads from
    there) and /run (its pid file) are private bind mounts of temporary directories."""
    require("/usr/sbin/xrdp", "/usr/bin/xrdp-keygen")
    d = Daemon("xrdp", host, tcp=[port], workdir=_workdir("xrdp"),
               version=upstream_version("xrdp"), package_version=package_version("xrdp"))
    with _starting(d):
        w = d.workdir
        assert w is not None
        etc, run = w / "etc", w / "run"
        etc.mkdir()
        run.mkdir()
        for km in Path("/etc/xrdp").glob("km-*.ini"):  # keymaps: read-only copies
            shutil.copyfile(km, etc / km.name)
        subprocess.run(["/usr/bin/xrdp-keygen", "xrdp", str(etc / "rsakeys.ini"), "2048"],
                       check=True, capture_output=True, timeout=60)
        cert = cert or make_certificate(w / "cert")
        c, k = _copy_cert(cert, w)
        (etc / "xrdp.ini").write_text(
            "[Globals]\nini_version=1\nfork=false\n"
            f"port=tcp://{host.addr4}:{port}\n"
            f"security_layer={security_layer}\ncrypt_level=high\n"
            f"certificate={c}\nkey_file={k}\nssl_protocols=TLSv1.2, TLSv1.3\n"
            "autorun=\nallow_channels=false\n"
            f"[Logging]\nLogFile={w}/daemon.log\nLogLevel=INFO\nEnableSyslog=false\n"
            "[Channels]\n"
            "[Xorg]\nname=Xorg\nlib=libxup.so\nusername=ask\npassword=ask\n"
            "ip=127.0.0.1\nport=-1\ncode=20\n")
        d.extra.update(security_layer=security_layer, cert=cert)
        _popen(d, private_mounts({"/etc/xrdp": etc, "/run": run},
                                 ["/usr/sbin/xrdp", "--nodaemon", "--config",
                                  str(etc / "xrdp.ini")]))
        wait_tcp(d, port)
    return d
