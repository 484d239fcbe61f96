"""Real service daemons inside lab hosts (for UDP scans and service detection tests).

Each ``start_*`` writes its own configuration into a fresh temporary directory, runs the
daemon in the foreground *inside the host's namespace* (``LabHost.popen``: it is killed
when the host is torn down) and waits until its port answers. Nothing system-wide is
touched: no service units, no /etc files. Add new daemons as new functions.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from portscope.testing.lab import LabError, LabHost


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
