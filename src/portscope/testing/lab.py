"""The namespace lab: throw-away target hosts for lab tests and benchmarks.

Each :class:`LabHost` is a network namespace joined to the *root* namespace by a veth pair,
so a scanner (portscope, nmap, masscan) runs as a plain process here and reaches the host
over a real link::

    with Lab() as lab:
        host = lab.add_host()
        host.listen_tcp([22, 80])
        host.drop(443)
        host.reject(8080, with_="icmp-admin-prohibited")
        subprocess.run(["nmap", "-sS", "-Pn", "-p", "22,80,443,8080", host.addr4])

Safety and hygiene:

* Every address is taken from 198.18.0.0/15 (IPv4) and 2001:db8::/32 (IPv6); a host gets a
  /30 and a /64 (``LINK_NET4``/``LINK_NET6``); ``add_local_route`` blocks come from
  ``BLOCK_NETS4``/``BLOCK_NETS6``. Nothing else can be configured through this module.
* Namespaces have no default route: a host can answer only its own link.
* While a lab exists, the root namespace has ``unreachable`` routes for the two whole ranges,
  so a probe of a lab address that no host owns fails here instead of leaving through the
  machine's default route. They are removed with the last lab on the machine.
* Allocation holds a file lock (``/run/portscope-lab/lock``) and checks the addresses and
  routes already configured, so concurrent test processes never collide.
* Names are ``pslab-<pid>-<n>`` (namespace) and ``pl<pid>h<n>`` (root-side veth);
  :func:`cleanup_stale` removes those whose owner process is gone.
* Teardown kills every process in the namespace and removes namespace, veth and routes,
  also on exceptions, KeyboardInterrupt and (inside ``with Lab()`` on the main thread) SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Literal

from portscope.errors import EXIT_UNAVAILABLE, PortscopeError
from portscope.testing.listener import format_ports, port_ranges

IPv4Network = ipaddress.IPv4Network
IPv6Network = ipaddress.IPv6Network
IPNetwork = IPv4Network | IPv6Network

#: Everything the lab may ever configure.
LAB_NET4 = IPv4Network("198.18.0.0/15")
LAB_NET6 = IPv6Network("2001:db8::/32")
#: Host links: one /30 and one /64 per host, both chosen by the same index.
LINK_NET4 = IPv4Network("198.18.0.0/18")
LINK_NET6 = IPv6Network("2001:db8::/48")
LINK_PREFIX4 = 30
LINK_PREFIX6 = 64
LINK_SLOTS = LINK_NET4.num_addresses >> (32 - LINK_PREFIX4)  # 4096 hosts at once
#: Where ``add_local_route`` blocks come from (198.19.0.0/16 is the one whole /16).
BLOCK_NETS4 = (
    IPv4Network("198.19.0.0/16"),
    IPv4Network("198.18.128.0/17"),
    IPv4Network("198.18.64.0/18"),
)
BLOCK_NETS6 = (IPv6Network("2001:db8:8000::/33"),)

NS_PREFIX = "pslab"
LOCK_DIR = Path("/run/portscope-lab")
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15
LOSS_CHAIN = "PSLAB-LOSS"

_NS_RE = re.compile(rf"^{NS_PREFIX}-(\d+)-(\d+)$")
_VETH_RE = re.compile(r"^pl(\d+)h(\d+)$")

Proto = Literal["tcp", "udp"]
Family = Literal["both", "ipv4", "ipv6"]
PortsArg = int | str | Iterable[int]

# ICMP reject types: iptables name -> ip6tables name
_REJECT6 = {
    "tcp-reset": "tcp-reset",
    "icmp-port-unreachable": "icmp6-port-unreachable",
    "icmp-admin-prohibited": "icmp6-adm-prohibited",
    "icmp-host-prohibited": "icmp6-adm-prohibited",
    "icmp-net-prohibited": "icmp6-adm-prohibited",
    "icmp-host-unreachable": "icmp6-addr-unreachable",
    "icmp-net-unreachable": "icmp6-no-route",
    "icmp-proto-unreachable": "icmp6-port-unreachable",
}


class LabError(PortscopeError):
    """Setting up or using the lab failed."""


class LabUnavailable(LabError):
    """This machine (or this user) cannot run the lab; ``reason`` says why."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, reason: str) -> None:
        super().__init__(f"namespace lab unavailable: {reason}")
        self.reason = reason


class LabCommandError(LabError):
    """A command run for the lab failed."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        shown = " ".join(cmd)
        detail = (stderr or stdout).strip()
        super().__init__(
            f"command failed (exit {returncode}): {shown}" + (f"\n{detail}" if detail else "")
        )
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


# ---------------------------------------------------------------------------------------------
# Pure parts: names, allocation, rule building (unit tested without root)
# ---------------------------------------------------------------------------------------------


def ns_name(pid: int, n: int) -> str:
    return f"{NS_PREFIX}-{pid}-{n}"


def veth_name(pid: int, n: int) -> str:
    name = f"pl{pid}h{n}"
    if len(name) > IFNAMSIZ:
        raise LabError(f"interface name {name!r} longer than {IFNAMSIZ} characters")
    return name


def parse_owner(name: str) -> tuple[int, int] | None:
    """``(pid, n)`` of a lab namespace or root-side veth name, else None."""
    m = _NS_RE.match(name) or _VETH_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def link_networks(index: int) -> tuple[IPv4Network, IPv6Network]:
    """The /30 and /64 of host link number *index*."""
    if not 0 <= index < LINK_SLOTS:
        raise LabError(f"link index {index} out of range")
    net4 = IPv4Network((int(LINK_NET4.network_address) + (index << (32 - LINK_PREFIX4)), 30))
    net6 = IPv6Network((int(LINK_NET6.network_address) + (index << (128 - LINK_PREFIX6)), 64))
    return net4, net6


def _blocked_indices(used: Iterable[IPNetwork]) -> set[int]:
    blocked: set[int] = set()
    for net in used:
        if net.version == 4 and net.overlaps(LINK_NET4):
            base, shift = int(LINK_NET4.network_address), 32 - LINK_PREFIX4
        elif net.version == 6 and net.overlaps(LINK_NET6):
            base, shift = int(LINK_NET6.network_address), 128 - LINK_PREFIX6
        else:
            continue
        first = max(int(net.network_address) - base, 0) >> shift
        last = min((int(net.broadcast_address) - base) >> shift, LINK_SLOTS - 1)
        blocked.update(range(first, last + 1))
    return blocked


def allocate_link(used: Iterable[IPNetwork], *, start: int = 0) -> int:
    """The first link index (from *start*, wrapping) whose /30 and /64 overlap nothing in
    *used* (addresses and routes already configured on this machine)."""
    blocked = _blocked_indices(used)
    for i in range(LINK_SLOTS):
        index = (start + i) % LINK_SLOTS
        if index not in blocked:
            return index
    raise LabError("no free lab link: 198.18.0.0/18 is used up (stale labs? see cleanup_stale)")


def allocate_block(prefixlen: int, used: Iterable[IPNetwork], *, version: int = 4) -> IPNetwork:
    """The first free aligned block of *prefixlen* in the local-route pools."""
    pools: tuple[IPNetwork, ...] = BLOCK_NETS4 if version == 4 else BLOCK_NETS6
    used_list = [n for n in used if n.version == version]
    for pool in pools:
        if prefixlen < pool.prefixlen:
            continue
        for candidate in pool.subnets(new_prefix=prefixlen):
            if not any(candidate.overlaps(n) for n in used_list):
                return candidate
    raise LabError(f"no free /{prefixlen} block left for local routes in the lab ranges")


def check_lab_network(net: IPNetwork) -> None:
    """Refuse anything outside 198.18.0.0/15 and 2001:db8::/32 (the only ranges tests use)."""
    inside = net.subnet_of(LAB_NET4) if net.version == 4 else net.subnet_of(LAB_NET6)
    if not inside:
        raise LabError(f"{net} is outside the lab ranges {LAB_NET4} and {LAB_NET6}")


def normalize_ports(ports: PortsArg) -> list[int]:
    """An int, a spec string (``"22,80,1000-2000"``) or an iterable of ints -> sorted ports."""
    from portscope.testing.listener import parse_ports

    if isinstance(ports, int):
        result = [ports]
    elif isinstance(ports, str):
        result = parse_ports(ports)
    else:
        result = sorted(set(ports))
    for port in result:
        if not 0 < port <= 65535:
            raise LabError(f"bad port {port}")
    if not result:
        raise LabError("no ports given")
    return result


def multiport_chunks(ports: Iterable[int], *, slots: int = 15) -> list[str]:
    """Port match arguments for iptables ``multiport``: at most 15 slots per rule, a range
    taking two. Returns ``--dports`` values like ``"22,80,1000:2000"``."""
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for lo, hi in port_ranges(ports):
        item, cost = (str(lo), 1) if lo == hi else (f"{lo}:{hi}", 2)
        if used + cost > slots:
            chunks.append(",".join(current))
            current, used = [], 0
        current.append(item)
        used += cost
    if current:
        chunks.append(",".join(current))
    return chunks


def port_match(chunk: str) -> list[str]:
    """iptables match for one :func:`multiport_chunks` item (a port, a range or a list)."""
    if "," in chunk:
        return ["-m", "multiport", "--dports", chunk]
    return ["--dport", chunk]


def reject_with(with_: str, version: int) -> str:
    if version == 4:
        return with_
    try:
        return _REJECT6[with_]
    except KeyError:
        if with_.startswith("icmp6-"):
            return with_
        raise LabError(f"no IPv6 equivalent known for --reject-with {with_}") from None


def restore_input(rules: Iterable[Sequence[str]], *, chains: Iterable[str] = ()) -> str:
    """An ``iptables-restore --noflush`` document for the filter table."""
    lines = ["*filter"]
    lines += [f":{chain} - [0:0]" for chain in chains]
    lines += [" ".join(rule) for rule in rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def networks_in_ip_json(addrs: Any, routes: Any) -> list[IPNetwork]:
    """Networks and addresses in ``ip -j addr`` and ``ip -j route`` output that touch the lab
    ranges (guard routes for the whole ranges excepted)."""
    found: list[IPNetwork] = []
    for link in addrs or []:
        for info in link.get("addr_info", []):
            local = info.get("local")
            if not local:
                continue
            iface = ipaddress.ip_interface(f"{local}/{info.get('prefixlen', 128)}")
            found.append(iface.network)
            found.append(ipaddress.ip_network(iface.ip))
    guards = {LAB_NET4, LAB_NET6}
    for route in routes or []:
        dst = route.get("dst")
        if not dst or dst == "default":
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net in guards:
            continue
        found.append(net)
    return [
        n
        for n in found
        if (n.version == 4 and n.overlaps(LAB_NET4)) or (n.version == 6 and n.overlaps(LAB_NET6))
    ]


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_availability: str | bool | None = False  # False: not probed yet
_availability_lock = threading.Lock()


def tool(name: str) -> str | None:
    """Absolute path of *name*, looking in sbin directories too (not in a user's PATH)."""
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(_SBIN)
    return shutil.which(name, path=path)


def _tool(name: str) -> str:
    found = tool(name)
    if found is None:
        raise LabUnavailable(f"{name!r} not found (install iproute2 and iptables)")
    return found


def _run(
    cmd: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(cmd),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout}s: {' '.join(cmd)}") from None
    except OSError as exc:
        raise LabError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
    if check and proc.returncode != 0:
        raise LabCommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _probe() -> str | None:
    disabled = os.environ.get("PORTSCOPE_LAB_DISABLE")
    if disabled:
        return f"disabled by PORTSCOPE_LAB_DISABLE ({disabled})"
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return (
            f"needs root to create network namespaces and veth pairs (running as uid "
            f"{os.geteuid()}); run the tests as root, e.g. `sudo -E scripts/test`"
        )
    missing = [t for t in ("ip", "iptables", "ip6tables", "iptables-restore") if tool(t) is None]
    if missing:
        return f"missing {', '.join(missing)}: install the Debian packages iproute2 and iptables"
    ip = _tool("ip")
    name = ns_name(os.getpid(), 0)  # hosts count from 1; cleanup_stale knows the pattern
    try:
        _run([ip, "netns", "add", name], timeout=15)
    except LabError as exc:
        return f"cannot create a network namespace (`ip netns add` failed): {exc}"
    try:
        try:
            _run(
                [ip, "-n", name, "link", "add", "name", "p0", "type", "veth", "peer", "name", "p1"]
            )
        except LabError as exc:
            return f"cannot create a veth pair: {exc}"
        for t in ("iptables", "ip6tables"):
            try:
                _run([ip, "netns", "exec", name, _tool(t), "-w", "-S"], timeout=15)
            except LabError as exc:
                return f"{t} does not work inside a network namespace: {exc}"
    finally:
        _run([ip, "netns", "del", name], check=False)
    return None


def unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None when it can (probed once per process).
    ``PORTSCOPE_LAB_DISABLE=<why>`` turns the lab off on purpose."""
    global _availability
    with _availability_lock:
        if _availability is False:
            _availability = _probe()
        assert _availability is not True
        return _availability


def require_lab() -> None:
    """Raise :class:`LabUnavailable` unless the lab can run here."""
    reason = unavailable_reason()
    if reason is not None:
        raise LabUnavailable(reason)


@contextlib.contextmanager
def machine_lock(timeout: float = 120.0) -> Iterator[None]:
    """The cross-process lock that serializes allocation and guard-route changes."""
    LOCK_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = LOCK_DIR / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"{path} held by another process for {timeout}s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def _configured_lab_networks() -> list[IPNetwork]:
    ip = _tool("ip")
    addrs = json.loads(_run([ip, "-j", "addr", "show"]).stdout or "[]")
    routes: list[Any] = []
    for fam in ("-4", "-6"):
        routes += json.loads(_run([ip, "-j", fam, "route", "show", "table", "all"]).stdout or "[]")
    return networks_in_ip_json(addrs, routes)


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def _owner_alive(pid: int, marker: Path | None = None) -> bool:
    start = _proc_start_time(pid)
    if start is None:
        return False
    if marker is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            recorded = marker.read_text().split()[1]
            return recorded == start
    return True


def _lab_netns_names() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if _NS_RE.match(n))
    except FileNotFoundError:
        return []


def _lab_veth_names() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/sys/class/net") if _VETH_RE.match(n))
    except FileNotFoundError:
        return []


def _ensure_guards() -> None:
    ip = _tool("ip")
    for net in (LAB_NET4, LAB_NET6):
        fam = "-4" if net.version == 4 else "-6"
        _run([ip, fam, "route", "replace", "unreachable", str(net), "metric", "4294967295"])


def _remove_guards_if_idle() -> None:
    if _lab_netns_names() or _lab_veth_names():
        return
    ip = _tool("ip")
    for net in (LAB_NET4, LAB_NET6):
        fam = "-4" if net.version == 4 else "-6"
        _run(
            [ip, fam, "route", "del", "unreachable", str(net), "metric", "4294967295"],
            check=False,
        )


def _kill_netns_processes(ip: str, ns: str) -> None:
    for _attempt in range(50):
        out = _run([ip, "netns", "pids", ns], check=False).stdout.split()
        pids = [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _destroy(ns: str, veth: str | None) -> list[str]:
    """Remove one lab host's veth, processes and namespace; return problems found."""
    ip = _tool("ip")
    problems: list[str] = []
    if veth and Path("/sys/class/net", veth).exists():
        proc = _run([ip, "link", "del", veth], check=False)
        if proc.returncode != 0 and Path("/sys/class/net", veth).exists():
            problems.append(f"cannot delete {veth}: {proc.stderr.strip()}")
    if (NETNS_DIR / ns).exists():
        _kill_netns_processes(ip, ns)
        proc = _run([ip, "netns", "del", ns], check=False)
        if proc.returncode != 0 and (NETNS_DIR / ns).exists():
            problems.append(f"cannot delete namespace {ns}: {proc.stderr.strip()}")
    with contextlib.suppress(FileNotFoundError):
        (LOCK_DIR / "owners" / ns).unlink()
    return problems


def cleanup_stale() -> list[str]:
    """Remove lab namespaces and veths (``pslab-*``, ``pl<pid>h<n>``) whose owning process is
    gone. Never touches a live process's lab. Returns the names removed."""
    if unavailable_reason() is not None:
        return []
    removed: list[str] = []
    owners = LOCK_DIR / "owners"
    with machine_lock():
        for ns in _lab_netns_names():
            owner = parse_owner(ns)
            assert owner is not None
            if _owner_alive(owner[0], owners / ns):
                continue
            _destroy(ns, veth_name(*owner))
            removed.append(ns)
        for veth in _lab_veth_names():
            owner = parse_owner(veth)
            assert owner is not None
            if _owner_alive(owner[0], owners / ns_name(*owner)):
                continue
            _destroy(ns_name(*owner), veth)
            removed.append(veth)
        with contextlib.suppress(FileNotFoundError):
            for marker in owners.iterdir():
                owner = parse_owner(marker.name)
                if owner is None or not _owner_alive(owner[0], marker):
                    marker.unlink(missing_ok=True)
        _remove_guards_if_idle()
    return removed


# ---------------------------------------------------------------------------------------------
# Listener handle
# ---------------------------------------------------------------------------------------------


class Listener:
    """A running ``portscope.testing.listener`` process inside a lab host."""

    def __init__(self, proc: subprocess.Popen[str], tcp: list[int], udp: list[int]) -> None:
        self.proc = proc
        self.tcp = tcp
        self.udp = udp

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        _terminate(self.proc)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(proc: subprocess.Popen[Any], grace: float = 2.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _wait_ready(proc: subprocess.Popen[str], errfile: IO[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            line = proc.stdout.readline()
            if line.startswith("READY"):
                return line.strip()
            if not line or line.startswith("ERROR"):
                proc.wait(5)
                errfile.seek(0)
                detail = (line.strip() + " " + errfile.read().decode(errors="replace")).strip()
                raise LabError(f"listener failed to start: {detail or 'exited'}")
    _terminate(proc)
    errfile.seek(0)
    raise LabError(
        f"listener not ready after {timeout}s: {errfile.read().decode(errors='replace')}"
    )


# ---------------------------------------------------------------------------------------------
# Hosts and labs
# ---------------------------------------------------------------------------------------------


class LabHost:
    """One target host: a namespace with ``lo`` and ``eth0``, linked to the root namespace.

    ``addr4``/``addr6`` are the host's addresses, ``gw4``/``gw6`` the root side's (the
    scanner's source address). No default route exists inside.
    """

    def __init__(self, lab: Lab, n: int, index: int) -> None:
        pid = os.getpid()
        self.lab = lab
        self.index = index
        self.name = ns_name(pid, n)
        self.veth = veth_name(pid, n)
        self.ifname = "eth0"
        self.net4, self.net6 = link_networks(index)
        self.gw4 = str(self.net4.network_address + 1)
        self.addr4 = str(self.net4.network_address + 2)
        self.gw6 = str(self.net6.network_address + 1)
        self.addr6 = str(self.net6.network_address + 2)
        self.local_routes: list[IPNetwork] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._loss_hooked: set[int] = set()
        self.closed = False

    def __repr__(self) -> str:
        return f"<LabHost {self.name} {self.addr4} {self.addr6}>"

    @property
    def addresses(self) -> tuple[str, str]:
        return (self.addr4, self.addr6)

    @property
    def mac(self) -> str:
        """MAC address of the host's eth0 (for masscan's ``--router-mac``)."""
        out = self.run(["cat", f"/sys/class/net/{self.ifname}/address"]).stdout
        return out.strip()

    def masscan_args(self) -> list[str]:
        """Arguments that pin masscan to this host's link (it would otherwise pick the
        machine's default interface and gateway)."""
        return [
            "--adapter", self.veth,
            "--adapter-ip", self.gw4,
            "--router-mac", self.mac,
        ]  # fmt: skip

    # -- creation / teardown ---------------------------------------------------------------

    def _create(self, sysctls: Mapping[str, str | int]) -> None:
        ip = _tool("ip")
        for net in (self.net4, self.net6):
            check_lab_network(net)
        _run([ip, "netns", "add", self.name])
        owners = LOCK_DIR / "owners"
        owners.mkdir(parents=True, exist_ok=True)
        (owners / self.name).write_text(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")
        _run(
            [ip, "link", "add", "name", self.veth, "type", "veth",
             "peer", "name", self.ifname, "netns", self.name]
        )  # fmt: skip
        _write_sysctls(None, {f"net.ipv6.conf.{self.veth}.disable_ipv6": 0,
                              f"net.ipv6.conf.{self.veth}.accept_ra": 0})  # fmt: skip
        _run(
            [ip, "-batch", "-"],
            input=(
                f"addr add {self.gw4}/{LINK_PREFIX4} dev {self.veth}\n"
                f"addr add {self.gw6}/{LINK_PREFIX6} dev {self.veth} nodad\n"
                f"link set {self.veth} up\n"
            ),
        )
        base: dict[str, str | int] = {
            "net.ipv6.conf.all.disable_ipv6": 0,
            "net.ipv6.conf.default.disable_ipv6": 0,
            f"net.ipv6.conf.{self.ifname}.disable_ipv6": 0,
            f"net.ipv6.conf.{self.ifname}.accept_ra": 0,
        }
        base.update(sysctls)
        self.sysctl(base)
        _run(
            [ip, "-n", self.name, "-batch", "-"],
            input=(
                "link set lo up\n"
                f"addr add {self.addr4}/{LINK_PREFIX4} dev {self.ifname}\n"
                f"addr add {self.addr6}/{LINK_PREFIX6} dev {self.ifname} nodad\n"
                f"link set {self.ifname} up\n"
            ),
        )
        self._wait_link()

    def _wait_link(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        flags = Path("/sys/class/net", self.veth, "operstate")
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if flags.read_text().strip() == "up":
                    return
            time.sleep(0.01)
        raise LabError(f"link {self.veth} did not come up within {timeout}s")

    def close(self) -> list[str]:
        """Kill this host's processes, delete namespace, veth and routes. Idempotent."""
        if self.closed:
            return []
        self.closed = True
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                _terminate(proc, grace=1.0)
        self._procs.clear()
        return _destroy(self.name, self.veth)

    # -- commands inside ------------------------------------------------------------------

    def _argv(self, cmd: str | Sequence[str]) -> list[str]:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return [_tool("ip"), "netns", "exec", self.name, *argv]

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run *cmd* (argv, or a shell string) inside the namespace and wait for it."""
        return _run(self._argv(cmd), check=check, input=input, timeout=timeout)

    def popen(self, cmd: str | Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start *cmd* inside the namespace; it is killed when the host is torn down."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(self._argv(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def listen(
        self,
        tcp: PortsArg = (),
        udp: PortsArg = (),
        *,
        addr: str | Sequence[str] | None = None,
        banner: bytes = b"",
        echo: bool = False,
        reply: bytes | None = b"portscope-lab\n",
        timeout: float = 15.0,
    ) -> Listener:
        """One listener process serving *tcp* and *udp* ports; returns once every socket is
        bound. UDP datagrams get *reply* (None: echo)."""
        tcp_ports = _optional_ports(tcp)
        udp_ports = _optional_ports(udp)
        if not tcp_ports and not udp_ports:
            raise LabError("listen() needs TCP or UDP ports")
        argv = [sys.executable, "-m", "portscope.testing.listener", "--parent", str(os.getpid())]
        addrs = [addr] if isinstance(addr, str) else list(addr or [])
        for a in addrs:
            argv += ["--addr", a]
        if tcp_ports:
            argv += ["--tcp", format_ports(tcp_ports)]
        if udp_ports:
            argv += ["--udp", format_ports(udp_ports)]
        if banner:
            argv += ["--banner-hex", banner.hex()]
        if echo:
            argv.append("--echo")
        if reply is None:
            argv.append("--udp-echo")
        elif reply:
            argv += ["--reply-hex", reply.hex()]
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])  # .../src, for uninstalled trees
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        with tempfile.TemporaryFile() as errfile:
            proc = self.popen(argv, stdout=subprocess.PIPE, stderr=errfile, text=True, env=env)
            _wait_ready(proc, errfile, timeout)
        return Listener(proc, tcp_ports, udp_ports)

    def listen_tcp(
        self,
        ports: PortsArg,
        addr: str | Sequence[str] | None = None,
        *,
        banner: bytes = b"",
        echo: bool = False,
    ) -> Listener:
        """Listen on TCP *ports* (accept, send *banner*, then close or *echo*)."""
        return self.listen(tcp=ports, addr=addr, banner=banner, echo=echo)

    def listen_udp(
        self,
        ports: PortsArg,
        addr: str | Sequence[str] | None = None,
        reply: bytes | None = b"portscope-lab\n",
    ) -> Listener:
        """Answer UDP datagrams on *ports* with *reply* (None: echo them)."""
        return self.listen(udp=ports, addr=addr, reply=reply)

    def ss(self) -> str:
        """``ss -ltnup`` inside the namespace."""
        return self.run([_tool("ss"), "-ltnup"]).stdout

    # -- sysctls --------------------------------------------------------------------------

    def sysctl(self, values: Mapping[str, str | int]) -> None:
        """Set sysctls inside the namespace (``{"net.ipv4.icmp_ratelimit": 0}``)."""
        _write_sysctls(self, values)

    def get_sysctl(self, name: str) -> str:
        path = "/proc/sys/" + name.replace(".", "/")
        return self.run(["cat", path]).stdout.strip()

    def icmp_ratelimit(self, ms: int = 0) -> None:
        """ICMP error rate limit in the namespace (0: none), both families."""
        self.sysctl({"net.ipv4.icmp_ratelimit": ms, "net.ipv6.icmp.ratelimit": ms})

    # -- firewall -------------------------------------------------------------------------

    def iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([_tool("iptables"), "-w", *args], check=check)

    def ip6tables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([_tool("ip6tables"), "-w", *args], check=check)

    def restore(self, version: int, document: str) -> None:
        """Feed an ``iptables-restore --noflush`` document to one family's tables."""
        name = "iptables-restore" if version == 4 else "ip6tables-restore"
        self.run([_tool(name), "-w", "--noflush"], input=document)

    def _input_rules(
        self, proto: Proto, ports: PortsArg, target: list[str], family: Family
    ) -> None:
        if proto not in ("tcp", "udp"):
            raise LabError(f"protocol must be tcp or udp, not {proto!r}")
        chunks = multiport_chunks(normalize_ports(ports))
        for version in _versions(family):
            tgt = list(target)
            if tgt[:2] == ["-j", "REJECT"]:
                tgt[-1] = reject_with(tgt[-1], version)
            rules = [["-A", "INPUT", "-p", proto, *port_match(c), *tgt] for c in chunks]
            self.restore(version, restore_input(rules))

    def drop(self, ports: PortsArg, proto: Proto = "tcp", *, family: Family = "both") -> None:
        """Silently drop packets to *ports* (filtered, no-response)."""
        self._input_rules(proto, ports, ["-j", "DROP"], family)

    def drop_range(
        self, lo: int, hi: int, proto: Proto = "tcp", *, family: Family = "both"
    ) -> None:
        """Drop packets to ports *lo*..*hi* inclusive."""
        self.drop(range(lo, hi + 1), proto, family=family)

    def reject(
        self,
        ports: PortsArg,
        proto: Proto = "tcp",
        *,
        with_: str | None = None,
        family: Family = "both",
    ) -> None:
        """Reject packets to *ports*: ``tcp-reset`` (closed), ``icmp-admin-prohibited``,
        ``icmp-port-unreachable``, ``icmp-host-unreachable``... (IPv4 names; mapped to the
        ICMPv6 equivalents for ip6tables). Default: tcp-reset for TCP, port-unreachable
        for UDP."""
        kind = with_ or ("tcp-reset" if proto == "tcp" else "icmp-port-unreachable")
        if kind == "tcp-reset" and proto != "tcp":
            raise LabError("tcp-reset works only for TCP")
        self._input_rules(proto, ports, ["-j", "REJECT", "--reject-with", kind], family)

    def loss(self, percent: float, *, family: Family = "both") -> None:
        """Random packet loss of *percent* in each direction on eth0 (0 removes it)."""
        if not 0 <= percent <= 100:
            raise LabError(f"loss percent must be within 0..100, not {percent}")
        for version in _versions(family):
            rules: list[list[str]] = []
            if version not in self._loss_hooked:
                rules += [
                    ["-I", "INPUT", "1", "-i", self.ifname, "-j", LOSS_CHAIN],
                    ["-I", "OUTPUT", "1", "-o", self.ifname, "-j", LOSS_CHAIN],
                ]
                self._loss_hooked.add(version)
            if percent > 0:
                prob = f"{percent / 100:.6f}"
                rules.append(
                    ["-A", LOSS_CHAIN, "-m", "statistic", "--mode", "random",
                     "--probability", prob, "-j", "DROP"]
                )  # fmt: skip
            self.restore(version, restore_input(rules, chains=[LOSS_CHAIN]))

    def flush_rules(self) -> None:
        """Remove every firewall rule added to the host (both families)."""
        for version in (4, 6):
            cmd = self.iptables if version == 4 else self.ip6tables
            cmd("-F")
            cmd("-X")
        self._loss_hooked.clear()

    # -- addresses ------------------------------------------------------------------------

    def add_local_route(
        self,
        cidr: str | IPNetwork | None = None,
        *,
        prefixlen: int | None = None,
        version: int = 4,
    ) -> IPNetwork:
        """Make every address of *cidr* answer as this host (a ``local`` route inside, a route
        via the host on the root side). Without *cidr*, a free block of *prefixlen* is
        allocated: IPv4 /16 by default (198.19.0.0/16, the one whole /16 the pools have),
        or with ``version=6`` an IPv6 /64 by default. Returns the network."""
        ip = _tool("ip")
        with machine_lock():
            used = _configured_lab_networks()
            if cidr is None:
                size = prefixlen if prefixlen is not None else (16 if version == 4 else 64)
                net = allocate_block(size, used, version=version)
            else:
                net = ipaddress.ip_network(cidr)
                check_lab_network(net)
                clash = [u for u in used if u.version == net.version and u.overlaps(net)]
                if clash:
                    raise LabError(f"{net} overlaps {clash[0]}, already configured")
            check_lab_network(net)
            fam = "-4" if net.version == 4 else "-6"
            via = self.addr4 if net.version == 4 else self.addr6
            _run([ip, "-n", self.name, fam, "route", "add", "local", str(net), "dev", "lo"])
            _run([ip, fam, "route", "add", str(net), "via", via, "dev", self.veth])
        self.local_routes.append(net)
        return net

    def add_onlink_block(self, prefixlen: int | None = None, *, version: int = 4) -> IPNetwork:
        """A free block routed straight onto this host's link from the root namespace
        (``ip route add NET dev <veth>``, no gateway, nothing inside): its addresses are
        on-link for a scanner here but nobody owns them, like the empty addresses of a
        LAN, so ARP/ND for them goes unanswered. IPv4 /30 or IPv6 /64 by default; the
        route goes away with the host's veth."""
        ip = _tool("ip")
        size = prefixlen if prefixlen is not None else (30 if version == 4 else 64)
        with machine_lock():
            net = allocate_block(size, _configured_lab_networks(), version=version)
            check_lab_network(net)
            fam = "-4" if net.version == 4 else "-6"
            _run([ip, fam, "route", "add", str(net), "dev", self.veth])
        self.local_routes.append(net)
        return net


def _optional_ports(ports: PortsArg) -> list[int]:
    if isinstance(ports, int | str):
        return normalize_ports(ports) if ports != "" else []
    as_list = list(ports)
    return normalize_ports(as_list) if as_list else []


def _versions(family: Family) -> tuple[int, ...]:
    if family == "both":
        return (4, 6)
    if family == "ipv4":
        return (4,)
    if family == "ipv6":
        return (6,)
    raise LabError(f"family must be both, ipv4 or ipv6, not {family!r}")


def _write_sysctls(host: LabHost | None, values: Mapping[str, str | int]) -> None:
    if not values:
        return
    args: list[str] = []
    for name, value in values.items():
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise LabError(f"bad sysctl name {name!r}")
        # interface names may contain dots only in theory; ours never do
        args += ["/proc/sys/" + name.replace(".", "/"), str(value)]
    script = 'while [ "$#" -gt 0 ]; do printf "%s\\n" "$2" > "$1" || exit 1; shift 2; done'
    argv = ["sh", "-c", script, "sh", *args]
    if host is None:
        _run(argv)
    else:
        host.run(argv)


_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


@atexit.register
def _close_live_labs() -> None:
    for lab in list(_live_labs):
        with contextlib.suppress(Exception):
            lab.close()


class Lab:
    """A set of lab hosts torn down together.

    Use it as a context manager (``with Lab() as lab: host = lab.add_host()``) or call
    :meth:`close`; unclosed labs are also closed at interpreter exit. Creating one raises
    :class:`LabUnavailable` when the machine cannot run the lab.
    """

    _counter = itertools.count(1)
    _counter_lock = threading.Lock()

    def __init__(self, *, handle_sigterm: bool = True) -> None:
        require_lab()
        self.hosts: list[LabHost] = []
        self.closed = False
        self._handle_sigterm = handle_sigterm
        self._old_sigterm: Any = None
        self._sigterm_installed = False
        _live_labs.add(self)

    def __enter__(self) -> Lab:
        if (
            self._handle_sigterm
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
        ):
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)
            self._sigterm_installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            problems = self.close()
        finally:
            if self._sigterm_installed:
                signal.signal(signal.SIGTERM, self._old_sigterm)
                self._sigterm_installed = False
        if problems and exc_type is None:
            raise LabError("lab teardown incomplete: " + "; ".join(problems))

    def add_host(self, *, sysctls: Mapping[str, str | int] | None = None) -> LabHost:
        """Create a host: namespace, veth, a /30 and a /64, lo and eth0 up."""
        if self.closed:
            raise LabError("this lab is closed")
        with Lab._counter_lock:
            n = next(Lab._counter)
        with machine_lock():
            _ensure_guards()
            index = allocate_link(_configured_lab_networks())
            host = LabHost(self, n, index)
            self.hosts.append(host)
            try:
                host._create(sysctls or {})
            except BaseException:
                host.close()
                self.hosts.remove(host)
                _remove_guards_if_idle()
                raise
        return host

    def close(self) -> list[str]:
        """Tear every host down; returns problems (also printed to stderr). Idempotent."""
        if self.closed:
            return []
        self.closed = True
        problems: list[str] = []
        for host in reversed(self.hosts):
            try:
                problems += host.close()
            except Exception as exc:
                problems.append(f"{host.name}: {exc}")
        with contextlib.suppress(Exception), machine_lock():
            _remove_guards_if_idle()
        _live_labs.discard(self)
        for problem in problems:
            print(f"portscope lab teardown: {problem}", file=sys.stderr)
        return problems


def _sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
