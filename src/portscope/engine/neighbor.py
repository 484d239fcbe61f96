"""On-link host discovery (nmap's ``-PR``): ARP who-has for IPv4 targets and Neighbor
Solicitations for IPv6 targets on a directly connected Ethernet link.

* :class:`RouteLookup` asks the kernel (rtnetlink, as ``ip route get``) for the route to
  each target; :func:`plan` turns route + interface into a :class:`NeighborPath` (pure
  decision: :func:`portscope.probes.ping.neighbor_path`) or leaves the target to the IP
  probes (off-link).
* :class:`LinkSocket` is an ``AF_PACKET`` socket on one interface with a classic BPF
  program, so the kernel hands us only ARP replies (:func:`arp_filter`) or ICMPv6 Neighbor
  Advertisements with hop limit 255 (:func:`nd_filter`), never our own frames.
* :class:`NeighborDiscovery` sends the requests (rate-limited, retried for the targets
  still silent) and records who answered, with the MAC address they gave.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portscope.engine.connect import EngineStats
from portscope.engine.rawsock import (
    CAPABILITY_HELP,
    PACKET_OUTGOING,
    SKF_AD_OFF,
    SKF_AD_PKTTYPE,
    Insn,
    attach_filter,
    close_packet_socket,
)
from portscope.engine.timing import RateController, RttEstimator, Timing, TokenBucket
from portscope.errors import PermissionProblem
from portscope.packets import ether
from portscope.packets.netlink import (
    AF_INET,
    AF_INET6,
    Route,
    RouteError,
    decode_dump,
    decode_route,
    dump_request,
    route_request,
)
from portscope.probes.ping import (
    Link,
    NeighborPath,
    OnlinkFilter,
    connected_networks,
    neighbor_path,
    neighbor_reason,
)

SYS_NET = Path("/sys/class/net")

# classic BPF opcodes (see engine/rawsock.py)
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS = 0x20, 0x28, 0x30
_JEQ = 0x15
_RET_K = 0x06
_ACCEPT = 0x40000


def arp_filter() -> list[Insn]:
    """BPF program for a SOCK_RAW packet socket (offset 0 = Ethernet header): incoming
    ARP replies (Ethernet/IPv4, opcode 2) only."""
    return [
        (_LD_W_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF),
        (_JEQ, 7, 0, PACKET_OUTGOING),  # -> drop
        (_LD_H_ABS, 0, 0, 12),  # ethertype
        (_JEQ, 0, 5, ether.ETH_P_ARP),
        (_LD_H_ABS, 0, 0, 16),  # ARP protocol type
        (_JEQ, 0, 3, ether.ETH_P_IP),
        (_LD_H_ABS, 0, 0, 20),  # ARP opcode
        (_JEQ, 0, 1, ether.ARP_REPLY),
        (_RET_K, 0, 0, _ACCEPT),
        (_RET_K, 0, 0, 0),
    ]


def nd_filter() -> list[Insn]:
    """BPF program (offset 0 = Ethernet header): incoming IPv6 packets whose next header
    is ICMPv6, hop limit 255, ICMPv6 type 136 (Neighbor Advertisement) only."""
    return [
        (_LD_W_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF),
        (_JEQ, 9, 0, PACKET_OUTGOING),  # -> drop
        (_LD_H_ABS, 0, 0, 12),  # ethertype
        (_JEQ, 0, 7, ether.ETH_P_IPV6),
        (_LD_B_ABS, 0, 0, 14 + 6),  # next header
        (_JEQ, 0, 5, 58),
        (_LD_B_ABS, 0, 0, 14 + 7),  # hop limit
        (_JEQ, 0, 3, ether.ND_HOP_LIMIT),
        (_LD_B_ABS, 0, 0, 14 + 40),  # ICMPv6 type
        (_JEQ, 0, 1, 136),
        (_RET_K, 0, 0, _ACCEPT),
        (_RET_K, 0, 0, 0),
    ]


# -- route and interface lookup -----------------------------------------------------------


class RouteLookup:
    """The kernel's route to a destination, over rtnetlink (what ``ip route get`` does,
    policy routing included). Sends nothing on the network."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.settimeout(1.0)
        self._seq = 0

    def __call__(self, address: str) -> Route | RouteError | None:
        self._seq += 1
        try:
            self.sock.send(route_request(address, self._seq))
            for _ in range(8):  # skip stale answers to earlier (timed-out) requests
                answer = decode_route(self.sock.recv(65536), self._seq)
                if answer is not None:
                    return answer
        except (OSError, ValueError):
            return None
        return None

    def dump(self) -> list[Route]:
        """Every route of every table, both families (``ip route show table all``)."""
        routes: list[Route] = []
        for family in (AF_INET, AF_INET6):
            self._seq += 1
            try:
                self.sock.send(dump_request(family, self._seq))
                for _ in range(100000):
                    got, done = decode_dump(self.sock.recv(1 << 20))
                    routes += got
                    if done:
                        break
            except OSError:
                continue
        return routes

    def close(self) -> None:
        self.sock.close()


def read_link(index: int, root: Path = SYS_NET) -> Link | None:
    """Interface *index* as sysfs describes it (None when it is gone)."""
    try:
        name = socket.if_indextoname(index)
        base = root / name
        return Link(
            index,
            name,
            (base / "address").read_text().strip().lower(),
            int((base / "type").read_text().strip()),
            int((base / "flags").read_text().strip(), 16),
        )
    except (OSError, ValueError):
        return None


def plan(
    addresses: Iterable[str],
    *,
    lookup: Callable[[str], Route | RouteError | None] | None = None,
    links: Callable[[int], Link | None] = read_link,
) -> tuple[dict[str, NeighborPath], list[str]]:
    """Split *addresses* into on-link targets (address -> ARP/ND path) and the rest."""
    own = lookup is None
    look = lookup if lookup is not None else RouteLookup()
    cache: dict[int, Link | None] = {}
    onlink: dict[str, NeighborPath] = {}
    offlink: list[str] = []
    try:
        # only addresses under a connected route can be on-link: the others (a sweep
        # behind a gateway) need no lookup of their own
        nets = (OnlinkFilter(connected_networks(look.dump()))
                if isinstance(look, RouteLookup) else None)
        for addr in addresses:
            if nets is not None and not nets(addr):
                offlink.append(addr)
                continue
            route = look(addr)
            link = None
            if isinstance(route, Route) and route.oif is not None:
                if route.oif not in cache:
                    cache[route.oif] = links(route.oif)
                link = cache[route.oif]
            path = neighbor_path(addr, route, link)
            if path is None:
                offlink.append(addr)
            else:
                onlink[addr] = path
    finally:
        if own:
            look.close()  # type: ignore[attr-defined]
    return onlink, offlink


# -- link-layer sockets ---------------------------------------------------------------------


class LinkSocket:
    """An AF_PACKET socket on one interface for ARP (``kind="arp"``) or ND (``"nd"``):
    sends whole Ethernet frames, receives only what :func:`arp_filter` / :func:`nd_filter`
    let through."""

    def __init__(self, ifname: str, kind: str, *, rcvbuf: int = 4 << 20) -> None:
        proto = ether.ETH_P_ARP if kind == "arp" else ether.ETH_P_IPV6
        try:
            # protocol 0 until bound: binding a socket whose protocol hook is already
            # registered makes the kernel wait for an RCU grace period (~15-30 ms)
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise PermissionProblem(CAPABILITY_HELP) from None
        try:
            attach_filter(self.sock, arp_filter() if kind == "arp" else nd_filter())
            self.sock.bind((ifname, proto))
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.ifname = ifname
        self.kind = kind
        self._drain()

    def _drain(self) -> None:
        """Drop what was queued before the filter was attached."""
        for _ in range(10000):
            try:
                self.sock.recv(2048)
            except OSError:
                return

    def send(self, frame: bytes) -> int:
        try:
            self.sock.send(frame)
        except OSError as exc:
            return exc.errno or 5
        return 0

    def recv_into(self, buf: bytearray) -> int:
        try:
            return self.sock.recv_into(buf)
        except OSError:
            return 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        close_packet_socket(self.sock)


# -- the discovery loop -----------------------------------------------------------------------


@dataclass
class NeighborAnswer:
    reason: str  # arp-response / nd-response
    rtt: float
    mac: str


def _packed(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)


def request_frame(path: NeighborPath, address: str) -> bytes:
    if path.kind == "arp":
        return ether.arp_request_frame(path.src_mac, path.src_ip, address)
    return ether.neighbor_solicit_frame(path.src_mac, path.src_ip, address)


@dataclass
class NeighborDiscovery:
    """Ask every on-link target (address -> path) for its MAC address; up to *rounds*
    requests per silent target. ``run()`` returns the answers; targets missing from it did
    not answer (down: on-link hosts cannot hide from ARP/ND)."""

    paths: Mapping[str, NeighborPath]
    timing: Timing
    level: int = 3
    rounds: int = 2  # nmap asks twice
    max_wait: float = 0.75  # seconds after a round at most (ARP answers come in microseconds)
    clock: Callable[[], float] = time.monotonic
    stats: EngineStats = field(default_factory=EngineStats)
    socket_factory: Callable[[str, str], LinkSocket] = LinkSocket

    def __post_init__(self) -> None:
        self._stop = False
        self.answers: dict[str, NeighborAnswer] = {}
        self.unreachable: list[str] = []  # targets whose link could not be opened

    def stop(self) -> None:
        self._stop = True

    def run(self) -> dict[str, NeighborAnswer]:
        clock = self.clock
        self.stats.started = clock()
        socks: dict[tuple[str, str], LinkSocket] = {}
        try:
            todo: list[str] = []
            for addr, path in self.paths.items():
                key = (path.ifname, path.kind)
                if key not in socks:
                    try:
                        socks[key] = self.socket_factory(path.ifname, path.kind)
                    except OSError:
                        self.unreachable.append(addr)
                        continue
                todo.append(addr)
            if todo:
                self._loop(todo, socks)
        finally:
            for s in socks.values():
                s.close()
            self.stats.finished = clock()
        return self.answers

    def _loop(self, todo: list[str], socks: dict[tuple[str, str], LinkSocket]) -> None:
        clock = self.clock
        rate = RateController(self.timing, clock(), self.level)
        bucket = TokenBucket(rate.rate, clock(), burst=max(1.0, rate.rate / 100))
        rtt = RttEstimator(self.timing)
        sent_at: dict[bytes, tuple[str, float, int]] = {}  # packed -> (address, sent, round)
        kinds: dict[str, str] = {addr: self.paths[addr].kind for addr in todo}
        buf = bytearray(2048)
        poller = select.poll()
        for s in socks.values():
            poller.register(s.fileno(), select.POLLIN)
        by_fd = {s.fileno(): s for s in socks.values()}

        def drain(sock: LinkSocket) -> None:
            while True:
                n = sock.recv_into(buf)
                if not n:
                    return
                now = clock()
                rep = ether.parse_neighbor_frame(memoryview(buf)[:n])
                if rep is None or rep.kind != sock.kind:
                    continue
                try:
                    key = _packed(rep.address)
                except OSError:
                    continue
                entry = sent_at.get(key)
                if entry is None or entry[0] in self.answers or kinds.get(entry[0]) != rep.kind:
                    continue
                addr, first, round_no = entry
                if self.paths[addr].ifname != sock.ifname:
                    continue
                self.stats.replies += 1
                rate.on_answer()
                if round_no == 0:
                    rtt.update(now - first)
                self.answers[addr] = NeighborAnswer(neighbor_reason(rep.kind), now - first, rep.mac)

        def drain_all() -> None:
            for s in socks.values():
                drain(s)

        for round_no in range(max(self.rounds, 1)):
            if self._stop:
                break
            for addr in todo:
                if self._stop:
                    break
                while bucket.available(clock()) < 1:
                    drain_all()
                    time.sleep(min(bucket.wait_time(clock()) + 0.0002, 0.01))
                path = self.paths[addr]
                packed = _packed(addr)
                if packed in sent_at:
                    self.stats.retransmissions += 1
                sent_at[packed] = (addr, clock(), round_no)  # before sending: veths are fast
                err = socks[(path.ifname, path.kind)].send(request_frame(path, addr))
                if err:
                    rate.on_local_drop()
                    continue
                bucket.take(1)
                self.stats.probes_sent += 1
                rate.on_sent()
                if rate.tick(clock()):
                    bucket.rate = rate.rate
                drain_all()
            deadline = clock() + min(max(rtt.timeout(), 0.05), self.max_wait)
            todo = [a for a in todo if a not in self.answers]
            while todo and clock() < deadline and not self._stop:
                for fd, _ev in poller.poll(10):
                    drain(by_fd[fd])
                todo = [a for a in todo if a not in self.answers]
            if not todo:
                break
