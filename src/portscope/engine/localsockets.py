"""Collecting this host's listening sockets (the I/O side of :mod:`portscope.local`).

Collectors, best first (``collect(collector="auto")`` picks the first that works):

``netlink``
    Linux: the kernel's socket table over NETLINK_SOCK_DIAG, like ``ss``: also tells
    IPv6-only from dual-stack wildcard sockets and the bound device.
``procfs``
    Linux: ``/proc/net/{tcp,tcp6,udp,udp6}`` (no v6only, no device).
``psutil``
    Any platform psutil supports (``psutil.net_connections``). It cannot tell one
    socket shared by several processes from several sockets, so on Linux the kernel
    tables above come first.

On Linux, sockets are tied to processes by their inode (``/proc/<pid>/fd``, which needs
root for other users' processes), and psutil supplies each process's name, user and
command line. Without root the result says that process details are partial.

``collect_in_netns`` runs the collection inside a named network namespace (``ip netns
exec``, root only) and returns that namespace's sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import pwd
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from portscope.errors import DataError, PermissionProblem, PortscopeError, UsageError
from portscope.local import procnet, sockdiag
from portscope.model import (
    Family,
    Inventory,
    ListeningSocket,
    LocalAddress,
    Protocol,
    SocketProcess,
    utcnow,
)
from portscope.targets import service_db

COLLECTORS = ("auto", "netlink", "procfs", "psutil")
_TABLES = ((Protocol.TCP, Family.IPV4), (Protocol.TCP, Family.IPV6),
           (Protocol.UDP, Family.IPV4), (Protocol.UDP, Family.IPV6))


class CollectorUnavailable(PortscopeError):
    """The chosen collector cannot run here."""


# --------------------------------------------------------------------------------------
# socket tables


def _netlink_dump(protocol: Protocol, family: Family, seq: int) -> sockdiag.DumpResult:
    res = sockdiag.DumpResult()
    buf = bytearray(1 << 18)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, sockdiag.NETLINK_SOCK_DIAG) as s:
        s.settimeout(5.0)
        s.sendto(sockdiag.dump_request(protocol, family, seq=seq), (0, 0))
        while not res.done:
            n = s.recv_into(buf)
            if n == 0:
                break
            sockdiag.parse_dump(bytes(buf[:n]), res, seq=seq)
    return res


def _ifname(index: int) -> str | None:
    if not index:
        return None
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"if{index}"


def netlink_table(proc_root: str = "/proc") -> tuple[list[ListeningSocket], list[str]]:
    """The sockets from sock_diag; a table the kernel cannot dump (no udp_diag module,
    IPv6 disabled) is read from /proc/net instead."""
    if not sys.platform.startswith("linux"):
        raise CollectorUnavailable("the netlink collector needs Linux")
    out: list[ListeningSocket] = []
    notes: list[str] = []
    for seq, (proto, fam) in enumerate(_TABLES, start=1):
        try:
            res = _netlink_dump(proto, fam, seq)
        except OSError as exc:
            if seq == 1:
                raise CollectorUnavailable(f"sock_diag netlink unavailable: {exc}") from None
            res = sockdiag.DumpResult(error=exc.errno or 1, done=True)
        if res.error:
            name = f"{proto.value}{'6' if fam is Family.IPV6 else ''}"
            with contextlib.suppress(CollectorUnavailable):
                socks, _ = procfs_table(proc_root, only=name)
                out.extend(socks)
                notes.append(f"{name} sockets read from /proc/net ({os.strerror(res.error)} "
                             f"from sock_diag)")
            continue
        if res.skipped:
            notes.append(f"{res.skipped} malformed sock_diag message(s) skipped")
        for d in res.sockets:
            keep = d.state == (sockdiag.TCP_LISTEN if proto is Protocol.TCP
                               else sockdiag.TCP_CLOSE)
            if proto is Protocol.UDP:
                keep = keep and d.remote_port == 0 and d.local_port != 0
            if keep:
                out.append(d.to_socket(proto, _ifname(d.ifindex)))
    return out, notes


def procfs_table(proc_root: str = "/proc", *, only: str | None = None
                 ) -> tuple[list[ListeningSocket], list[str]]:
    """The sockets from ``/proc/net/*`` (the current network namespace's)."""
    tables = []
    notes: list[str] = []
    found = False
    for name, (proto, fam) in procnet.FILES.items():
        if only is not None and name != only:
            continue
        path = Path(proc_root, "net", name)
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            continue  # no IPv6 in this kernel
        except OSError as exc:
            notes.append(f"cannot read {path}: {exc.strerror}")
            continue
        found = True
        table = procnet.parse_table(text, proto, fam, byteorder=sys.byteorder)
        if table.skipped:
            notes.append(f"{table.skipped} unreadable line(s) in {path} skipped")
        tables.append(table)
    if not found:
        raise CollectorUnavailable(f"no socket tables under {proc_root}/net (not Linux?)")
    return procnet.listening_sockets(tables), notes


def psutil_table() -> tuple[list[ListeningSocket], list[str]]:
    """The sockets from ``psutil.net_connections`` (any platform), with their PIDs."""
    import psutil

    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        raise CollectorUnavailable("psutil.net_connections needs more privileges here "
                                   "(macOS: run as root)") from None
    groups: dict[tuple[Protocol, str, int], list[int]] = {}
    for c in conns:
        if not c.laddr:
            continue
        proto = Protocol.TCP if c.type == socket.SOCK_STREAM else Protocol.UDP
        if proto is Protocol.TCP and c.status != psutil.CONN_LISTEN:
            continue
        if proto is Protocol.UDP and c.raddr:
            continue
        addr = c.laddr.ip.split("%", 1)[0]
        pids = groups.setdefault((proto, addr, c.laddr.port), [])
        if c.pid is not None and c.pid not in pids:
            pids.append(c.pid)
    out = []
    for (proto, addr, port), pids in groups.items():
        try:
            sock = ListeningSocket.make(proto, addr, port)
        except DataError:
            continue
        out.append(replace(sock, processes=tuple(SocketProcess(pid=p) for p in pids)))
    return out, ["psutil cannot tell one socket shared by several processes from several "
                 "sockets on the same address"]


# --------------------------------------------------------------------------------------
# processes


def inode_owners(proc_root: str = "/proc") -> tuple[dict[int, list[tuple[int, int]]], bool]:
    """socket inode -> [(pid, fd)] over every process we may look at; the flag is False
    when some processes' descriptors could not be read (not root)."""
    owners: dict[int, list[tuple[int, int]]] = {}
    complete = True
    try:
        pids = [int(n) for n in os.listdir(proc_root) if n.isdigit()]
    except OSError:
        return owners, False
    for pid in sorted(pids):
        fd_dir = f"{proc_root}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue  # the process is gone
        for fd in fds:
            try:
                inode = procnet.parse_fd_link(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None and fd.isdigit():
                owners.setdefault(inode, []).append((pid, int(fd)))
    return owners, complete


def process_info(pid: int, fd: int | None = None) -> SocketProcess:
    """Name, user and command line of *pid* (as far as we may see them)."""
    import psutil

    name = user = None
    cmdline: tuple[str, ...] = ()
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            with contextlib.suppress(psutil.Error):
                name = p.name()
            with contextlib.suppress(psutil.Error, KeyError):
                user = p.username()
            with contextlib.suppress(psutil.Error):
                cmdline = tuple(p.cmdline())
    except psutil.Error:
        pass
    return SocketProcess(pid=pid, name=name, user=user, fd=fd, cmdline=cmdline)


def _user(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def local_addresses() -> list[LocalAddress]:
    """Every address configured on this host's interfaces (of this namespace)."""
    import psutil

    out = []
    for ifname, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            text = a.address.split("%", 1)[0]
            prefix = None
            if a.netmask:
                with contextlib.suppress(ValueError):
                    import ipaddress

                    prefix = ipaddress.ip_network(f"{text}/{a.netmask}", strict=False).prefixlen
            with contextlib.suppress(DataError):
                out.append(LocalAddress.from_dict({"address": text, "interface": ifname,
                                                   "prefixlen": prefix}))
    return out


# --------------------------------------------------------------------------------------
# the inventory


def _pick(collector: str) -> list[tuple[str, Callable[[], tuple[list[ListeningSocket],
                                                                 list[str]]]]]:
    table: dict[str, Callable[[], tuple[list[ListeningSocket], list[str]]]] = {
        "netlink": netlink_table, "procfs": procfs_table, "psutil": psutil_table}
    if collector == "auto":
        order = (["netlink", "procfs", "psutil"] if sys.platform.startswith("linux")
                 else ["psutil"])
        return [(n, table[n]) for n in order]
    if collector not in table:
        raise UsageError(f"unknown collector {collector!r} (choose from: "
                         f"{', '.join(COLLECTORS)})")
    return [(collector, table[collector])]


def collect(collector: str = "auto", *, now: datetime | None = None,
            proc_root: str = "/proc") -> Inventory:
    """This host's (this network namespace's) listening sockets, as an :class:`Inventory`."""
    errors = []
    name = collector
    for name, fn in _pick(collector):  # noqa: B007 - name is used after the loop
        try:
            sockets, notes = fn()
        except CollectorUnavailable as exc:
            errors.append(exc.message)
            continue
        break
    else:
        raise CollectorUnavailable("cannot list sockets: " + "; ".join(errors))

    if name == "psutil":
        sockets, detail = _attach_pids(sockets)
    else:
        sockets, detail = _attach_inodes(sockets, proc_root)
    db = service_db()
    sockets = [replace(s, service=s.service or db.name(s.port, s.protocol.value),
                       user=s.user or _user(s.uid)
                       or (s.processes[0].user if s.processes else None))
               for s in sockets]
    if detail != "full":
        missing = sum(1 for s in sockets if not s.processes)
        notes.append(f"process details are partial: {missing} of {len(sockets)} socket(s) "
                     f"show no process, since only root may look at other users' processes "
                     f"(run as root for all)")
    inv = Inventory(hostname=socket.gethostname(), taken=now or utcnow(),
                    addresses=tuple(local_addresses()), collector=name,
                    platform=f"{platform.system()} {platform.release()}".strip(),
                    process_detail=detail, notes=tuple(notes))
    return inv.with_sockets(sockets)


def _attach_inodes(sockets: Iterable[ListeningSocket], proc_root: str
                   ) -> tuple[list[ListeningSocket], str]:
    owners, complete = inode_owners(proc_root)
    info: dict[int, SocketProcess] = {}
    out = []
    for s in sockets:
        procs = []
        for pid, fd in owners.get(s.inode or -1, []):
            base = info.get(pid) or info.setdefault(pid, process_info(pid))
            procs.append(replace(base, fd=fd))
        out.append(replace(s, processes=tuple(procs)))
    detail = "full" if complete or os.geteuid() == 0 else "partial"
    return out, detail


def _attach_pids(sockets: Iterable[ListeningSocket]) -> tuple[list[ListeningSocket], str]:
    out = []
    for s in sockets:
        out.append(replace(s, processes=tuple(process_info(p.pid) for p in s.processes)))
    detail = "full" if hasattr(os, "geteuid") and os.geteuid() == 0 else "partial"
    return out, detail


# --------------------------------------------------------------------------------------
# network namespaces

_NS_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,254}$")


def collect_in_netns(name: str, collector: str = "auto", *, timeout: float = 60.0
                     ) -> Inventory:
    """The inventory of network namespace *name* (``ip netns list``); needs root."""
    if not _NS_NAME.match(name) or name in (".", ".."):
        raise UsageError(f"{name!r} is not a network namespace name (see 'ip netns list')")
    if not Path("/run/netns", name).exists():
        raise UsageError(f"no network namespace named {name!r} (see 'ip netns list')")
    if os.geteuid() != 0:
        raise PermissionProblem(f"--netns {name} needs root (entering a network namespace): "
                                f"run with sudo")
    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip")
                                     if os.access(p, os.X_OK)), None)
    if ip is None:
        raise CollectorUnavailable("--netns needs the 'ip' command (Debian: iproute2)")
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[2])  # .../src, for uninstalled trees
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    cmd = [ip, "netns", "exec", name, sys.executable, "-m", "portscope", "local",
           "--collector", collector, "--json", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise PortscopeError(f"collecting sockets in namespace {name} took over "
                             f"{timeout:.0f}s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        last = last.removeprefix("portscope: error: ")
        raise PortscopeError(f"collecting sockets in namespace {name} failed: {last}")
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise DataError(f"namespace {name}: the collector's output is not JSON") from None
    return replace(Inventory.from_dict(doc), netns=name)
