"""Target specifications as nmap users type them.

Accepted forms (several may be given; ``-iL`` files hold one or more a line):

* ``198.18.0.2`` / ``2001:db8::2``          one address
* ``198.18.0.0/24`` / ``2001:db8::/120``    a prefix (all addresses, like nmap)
* ``198.18.0.1-20``                         a range in the last octet
* ``198.18.1-3.1-254``                      octet ranges (any octet, ``a-b`` and ``,`` lists, ``*``)
* ``198.18.0.1-198.18.0.9``                 a range between two full addresses
* ``host.example``                          a host name, resolved once (``-6``: AAAA)

The parsed set never materialises its addresses: it is a list of blocks that can
be counted and indexed (``address_at(i)``), so a keyed permutation can walk
huge spaces without holding them in memory.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol as TypingProtocol

from portscope.errors import ResolveError, TargetSpecError, reading

Resolver = Callable[[str, int], list[str]]
"""``resolver(name, family)`` -> addresses (family is socket.AF_INET or AF_INET6)."""


def system_resolver(name: str, family: int) -> list[str]:
    """Resolve *name* with the system resolver (getaddrinfo). Names under ``.invalid``
    never resolve (RFC 6761): they fail here without asking any server."""
    if name.lower().rstrip(".") == "invalid" or name.lower().rstrip(".").endswith(".invalid"):
        raise ResolveError(f"cannot resolve host name {name!r}: .invalid names never resolve")
    try:
        infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolveError(f"cannot resolve host name {name!r}: {exc}") from None
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in seen:
            seen.append(addr)
    return seen


class Block(TypingProtocol):
    @property
    def version(self) -> int: ...

    @property
    def size(self) -> int: ...
    def int_at(self, i: int) -> int: ...
    def contains_int(self, value: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Interval:
    """Consecutive addresses [first, last] as integers."""

    version: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def int_at(self, i: int) -> int:
        return self.first + i

    def contains_int(self, value: int) -> bool:
        return self.first <= value <= self.last


@dataclass(frozen=True, slots=True)
class OctetBlock:
    """nmap's octet-range form: the cartesian product of four sorted octet lists."""

    octets: tuple[tuple[int, ...], ...]
    version: int = 4

    @property
    def size(self) -> int:
        n = 1
        for o in self.octets:
            n *= len(o)
        return n

    def int_at(self, i: int) -> int:
        value = 0
        shift = 24
        sizes = [len(o) for o in self.octets]
        # mixed radix, most significant octet first
        divisor = self.size
        for k, octs in enumerate(self.octets):
            divisor //= sizes[k]
            idx, i = divmod(i, divisor)
            value |= octs[idx] << shift
            shift -= 8
        return value

    def contains_int(self, value: int) -> bool:
        for k, octs in enumerate(self.octets):
            o = (value >> (24 - 8 * k)) & 0xFF
            j = bisect.bisect_left(octs, o)
            if j >= len(octs) or octs[j] != o:
                return False
        return True


def _int_to_text(version: int, value: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def _parse_octet(text: str, spec: str) -> tuple[int, ...]:
    values: set[int] = set()
    for part in text.split(","):
        if part == "*":
            part = "0-255"
        if "-" in part:
            a, _, b = part.partition("-")
            lo = int(a) if a else 0
            hi = int(b) if b else 255
        else:
            lo = hi = int(part)
        if not (0 <= lo <= hi <= 255):
            raise TargetSpecError(f"bad octet range {part!r} in target {spec!r}")
        values.update(range(lo, hi + 1))
    return tuple(sorted(values))


def _looks_like_octets(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p and set(p) <= set("0123456789-,*") for p in parts)


def parse_one(spec: str, *, ipv6: bool = False,
              resolver: Resolver = system_resolver) -> tuple[list[Block], dict[str, str]]:
    """Parse one target spec into blocks; returns (blocks, {address: hostname})."""
    text = spec.strip()
    if not text:
        raise TargetSpecError("empty target specification")
    if any(c.isspace() for c in text):
        raise TargetSpecError(f"bad target {spec!r}: contains white space")
    # prefix
    if "/" in text:
        addr_part, _, plen = text.partition("/")
        try:
            addr = ipaddress.ip_address(addr_part)
        except ValueError:
            # host name with prefix (nmap allows it): resolve, then apply the prefix
            names = _resolve(addr_part, ipv6, resolver)
            addr = ipaddress.ip_address(names[0])
        try:
            net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
        except ValueError:
            raise TargetSpecError(f"bad prefix length in target {spec!r}") from None
        return [Interval(net.version, int(net.network_address), int(net.broadcast_address))], {}
    # plain address
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
        return [Interval(addr.version, int(addr), int(addr))], {}
    except ValueError:
        pass
    # address-address range
    if ("-" in text and text.count(".") >= 6) or (":" in text and "-" in text):
        a, _, b = text.partition("-")
        try:
            first, last = ipaddress.ip_address(a), ipaddress.ip_address(b)
        except ValueError:
            raise TargetSpecError(f"bad address range {spec!r}") from None
        if first.version != last.version or int(first) > int(last):
            raise TargetSpecError(f"bad address range {spec!r}: start after end or mixed families")
        return [Interval(first.version, int(first), int(last))], {}
    # octet ranges
    if _looks_like_octets(text):
        octets = tuple(_parse_octet(p, spec) for p in text.split("."))
        block = OctetBlock(octets)
        if block.size == 1:
            v = block.int_at(0)
            return [Interval(4, v, v)], {}
        return [block], {}
    if text[0].isdigit() and text.replace(".", "").replace("-", "").isdigit():
        raise TargetSpecError(f"bad target {spec!r}: not an address, range or prefix")
    # host name
    if not all(c.isalnum() or c in "-._" for c in text):
        raise TargetSpecError(f"bad target {spec!r}: not an address, prefix, range or host name")
    addrs = _resolve(text, ipv6, resolver)
    ip = ipaddress.ip_address(addrs[0])
    return [Interval(ip.version, int(ip), int(ip))], {str(ip): text}


def _resolve(name: str, ipv6: bool, resolver: Resolver) -> list[str]:
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    addrs = resolver(name, family)
    if not addrs:
        kind = "IPv6" if ipv6 else "IPv4"
        raise ResolveError(f"host name {name!r} has no {kind} address")
    return addrs


def read_target_file(path: str) -> list[str]:
    """Specs from an ``-iL`` file: white-space separated, ``#`` starts a comment;
    ``-`` reads standard input."""
    import sys

    specs: list[str] = []
    with reading(path):
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
    for line in lines:
        line = line.split("#", 1)[0]
        specs.extend(line.split())
    return specs


@dataclass
class TargetSet:
    """The addresses to scan: indexable, countable, never materialised."""

    blocks: list[Block]
    excluded: list[Block] = field(default_factory=list)
    hostnames: dict[str, str] = field(default_factory=dict)
    specs: tuple[str, ...] = ()
    _offsets: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        total = 0
        self._offsets = []
        for b in self.blocks:
            self._offsets.append(total)
            total += b.size
        self._raw = total

    @property
    def raw_size(self) -> int:
        """Number of index slots (before exclusions)."""
        return self._raw

    def int_at(self, i: int) -> tuple[int, int]:
        """(version, integer address) at raw index *i*."""
        if not 0 <= i < self._raw:
            raise IndexError(i)
        k = bisect.bisect_right(self._offsets, i) - 1
        b = self.blocks[k]
        return b.version, b.int_at(i - self._offsets[k])

    def address_at(self, i: int) -> str | None:
        """Address text at raw index *i*, or None when excluded."""
        version, value = self.int_at(i)
        if self.excluded and self._is_excluded(version, value):
            return None
        return _int_to_text(version, value)

    def _is_excluded(self, version: int, value: int) -> bool:
        return any(x.version == version and x.contains_int(value) for x in self.excluded)

    def __iter__(self) -> Iterator[str]:
        for i in range(self._raw):
            a = self.address_at(i)
            if a is not None:
                yield a

    def count(self, exact_limit: int = 1 << 20) -> int:
        """Addresses to scan, after exclusions (exact up to *exact_limit* raw slots,
        otherwise exclusions of intervals are subtracted exactly and others ignored)."""
        if not self.excluded:
            return self._raw
        if self._raw <= exact_limit:
            return sum(1 for _ in self)
        n = self._raw
        for b in self.blocks:
            if isinstance(b, Interval):
                for x in self.excluded:
                    if isinstance(x, Interval) and x.version == b.version:
                        lo, hi = max(b.first, x.first), min(b.last, x.last)
                        if lo <= hi:
                            n -= hi - lo + 1
        return max(n, 0)


def _merge(blocks: Iterable[Block]) -> list[Block]:
    """Merge overlapping/adjacent intervals (so an address is scanned once); octet
    blocks are kept as they are."""
    intervals = sorted((b for b in blocks if isinstance(b, Interval)),
                       key=lambda b: (b.version, b.first))
    others = [b for b in blocks if not isinstance(b, Interval)]
    merged: list[Block] = []
    cur: Interval | None = None
    for iv in intervals:
        if cur is not None and iv.version == cur.version and iv.first <= cur.last + 1:
            cur = Interval(cur.version, cur.first, max(cur.last, iv.last))
        else:
            if cur:
                merged.append(cur)
            cur = iv
    if cur is not None:
        merged.append(cur)
    return merged + others


def parse_targets(specs: Sequence[str], *, exclude: Sequence[str] = (), ipv6: bool = False,
                  resolver: Resolver = system_resolver) -> TargetSet:
    """Parse target specs (and exclusions) into a :class:`TargetSet`.

    With ``ipv6=False`` IPv6 literals are still accepted (they name their family);
    ``ipv6`` only decides which address family host names resolve to.
    """
    blocks: list[Block] = []
    names: dict[str, str] = {}
    for spec in specs:
        b, n = parse_one(spec, ipv6=ipv6, resolver=resolver)
        blocks.extend(b)
        names.update(n)
    if not blocks:
        raise TargetSpecError("no targets given")
    excluded: list[Block] = []
    for spec in exclude:
        for part in spec.split(","):
            if part.strip():
                excluded.extend(parse_one(part, ipv6=ipv6, resolver=resolver)[0])
    return TargetSet(blocks=_merge(blocks), excluded=_merge(excluded), hostnames=names,
                     specs=tuple(specs))
