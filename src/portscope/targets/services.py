"""Service names for ports, and the ``--top-ports`` ranking.

Names come from maintained sources, read at run time, first match wins:

1. the system's services database (``/etc/services``; on Debian the ``netbase``
   package, kept in step with the IANA Service Name and Port Number Registry);
2. nmap's ``nmap-services`` when nmap is installed (more names, and open frequencies);
3. the project's own ``data/top-ports.tsv`` (names for the ranked ports only).

``--top-ports N`` ranks ports by how often they are found open in practice. When
nmap is installed, portscope uses the open-frequency column of the installed
``nmap-services`` (measured by the nmap project in Internet-wide scans; read at run
time, never copied into this project). Without nmap it falls back to the built-in
``data/top-ports.tsv``: a list the portscope developers compiled from the services that
administrators commonly expose (see the file's header), followed by the remaining
well-known ports in numeric order. ``portscope scan --top-ports-source`` tells which
one is in use.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

SYSTEM_SERVICES = "/etc/services"
NMAP_SERVICES_PATHS = (
    "/usr/share/nmap/nmap-services",
    "/usr/local/share/nmap/nmap-services",
    "/opt/homebrew/share/nmap/nmap-services",
)


NameIndex = dict[str, dict[tuple[str, int], None]]
Frequencies = dict[tuple[str, int], float]


@dataclass(eq=False)
class ServiceDB:
    by_port: dict[tuple[str, int], str] = field(default_factory=dict)
    ranking_source: str = ""
    builtin_rank: list[tuple[str, int]] = field(default_factory=list)
    # name -> {(proto, port): None}: an insertion-ordered set ("unknown" has thousands)
    _by_name: NameIndex = field(default_factory=dict, repr=False)
    # (proto, port) -> open frequency (higher = more often open), from nmap-services
    _frequency: Frequencies = field(default_factory=dict, repr=False)
    # from the cache: the name index and the frequencies are decoded when first used (a
    # scan of given port numbers needs neither: ~30 ms of every start)
    _later: Callable[[], tuple[NameIndex, Frequencies]] | None = field(default=None,
                                                                       repr=False)

    def _load(self) -> None:
        if self._later is not None:
            later, self._later = self._later, None
            self._by_name, self._frequency = later()

    @property
    def by_name(self) -> NameIndex:
        self._load()
        return self._by_name

    @property
    def frequency(self) -> Frequencies:
        self._load()
        return self._frequency

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServiceDB):
            return NotImplemented
        return (self.by_port, self.by_name, self.frequency, self.ranking_source,
                self.builtin_rank) == (other.by_port, other.by_name, other.frequency,
                                       other.ranking_source, other.builtin_rank)

    __hash__ = None  # type: ignore[assignment]

    def add(self, name: str, proto: str, port: int, *, override: bool = False) -> None:
        key = (proto, port)
        if name == "unknown":  # nmap-services' placeholder is no name
            return
        if override or key not in self.by_port:
            self.by_port[key] = name
        self.by_name.setdefault(name.lower(), {})[key] = None

    def name(self, port: int, proto: str = "tcp") -> str | None:
        return self.by_port.get((proto, port))

    def lookup(self, name: str) -> list[tuple[str, int]]:
        """(proto, port) pairs registered for a service name (case-insensitive)."""
        return list(self.by_name.get(name.lower(), {}))

    def top(self, n: int, proto: str) -> list[int]:
        """The *n* ports of *proto* most often found open (see module docstring)."""
        if self.frequency:
            ranked = sorted(((f, p) for (pr, p), f in self.frequency.items() if pr == proto),
                            key=lambda fp: (-fp[0], fp[1]))
            ports = [p for _, p in ranked]
        else:
            ports = [p for pr, p in self.builtin_rank if pr == proto]
        if len(ports) < n:
            seen = set(ports)
            ports.extend(p for p in range(1, 65536) if p not in seen)
        return ports[:n]


def _parse_services_file(text: str, db: ServiceDB, *, with_frequency: bool) -> None:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or "/" not in parts[1]:
            continue
        port_s, _, proto = parts[1].partition("/")
        if proto not in ("tcp", "udp") or not port_s.isdigit():
            continue
        port = int(port_s)
        if not 0 <= port <= 65535:
            continue
        name = parts[0]
        db.add(name, proto, port)
        for alias in parts[2:] if not with_frequency else ():
            db.add(alias, proto, port)
        if with_frequency and len(parts) >= 3:
            try:
                db.frequency[(proto, port)] = float(parts[2])
            except ValueError:
                pass


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def load_builtin_rank() -> list[tuple[str, int, str]]:
    text = resources.files("portscope.data").joinpath("top-ports.tsv").read_text("utf-8")
    out: list[tuple[str, int, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        proto, port, name = [*line.split("\t"), "", ""][:3]
        out.append((proto.strip(), int(port), name.strip()))
    return out


@lru_cache(maxsize=1)
def service_db() -> ServiceDB:
    """The process-wide service database (read once; from the cache when its sources
    have not changed since it was written)."""
    system_path = os.environ.get("PORTSCOPE_SERVICES", SYSTEM_SERVICES)
    nmap_path = os.environ.get("PORTSCOPE_NMAP_SERVICES")
    candidates = (nmap_path,) if nmap_path is not None else NMAP_SERVICES_PATHS
    nmap_file = next((p for p in candidates if p and os.path.isfile(p)), None)
    cache = _cache_file(system_path, nmap_file)
    db = _load_cache(cache, lambda: _build(system_path, nmap_file)) \
        if cache is not None else None
    if db is None:
        db = _build(system_path, nmap_file)
        if cache is not None:
            _save_cache(cache, db)
    return db


def _build(system_path: str, nmap_file: str | None) -> ServiceDB:
    db = ServiceDB()
    system = _read(system_path)
    if system:
        _parse_services_file(system, db, with_frequency=False)
    text = _read(nmap_file) if nmap_file else None
    if text:
        _parse_services_file(text, db, with_frequency=True)
        if db.frequency:
            db.ranking_source = f"nmap open-frequency data ({nmap_file})"
    for proto, port, name in load_builtin_rank():
        db.builtin_rank.append((proto, port))
        if name:
            db.add(name, proto, port)
    if not db.ranking_source:
        db.ranking_source = "portscope built-in list (data/top-ports.tsv)"
    return db


# The parsed database is cached (marshal: plain data, no code runs on loading it): parsing
# nmap-services' 27,000 lines costs ~0.1 s at every start, loading the cache ~0.03 s. The
# file name is a digest of the sources' paths, sizes and modification times, so a changed
# source is parsed again; an unreadable, corrupt or foreign cache file is ignored.
_CACHE_FORMAT = 2


def _cache_file(system_path: str, nmap_file: str | None) -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME")
    if not (base and os.path.isabs(base)):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    builtin = resources.files("portscope.data").joinpath("top-ports.tsv")
    parts: list[str] = [str(_CACHE_FORMAT)]
    for path in (system_path, nmap_file, str(builtin)):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}" if st else f"{path}:-")
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()
    return Path(base) / "portscope" / f"services-{digest}.marshal"


def _load_cache(path: Path, rebuild: Callable[[], ServiceDB]) -> ServiceDB | None:
    """The cached database, its name index and frequencies still encoded (*rebuild*
    parses the sources should that part turn out corrupt)."""
    try:
        with open(path, "rb") as fh:
            data = marshal.loads(fh.read())
        fmt, by_port, source, rank, rest = data
        if fmt != _CACHE_FORMAT or not isinstance(by_port, dict) or \
                not isinstance(rest, bytes):
            return None
    except (OSError, EOFError, ValueError, TypeError):
        return None

    def later() -> tuple[NameIndex, Frequencies]:
        try:
            by_name, frequency = marshal.loads(rest)
            if isinstance(by_name, dict) and isinstance(frequency, dict):
                return by_name, frequency
        except (EOFError, ValueError, TypeError):
            pass
        fresh = rebuild()
        return fresh.by_name, fresh.frequency

    return ServiceDB(by_port=by_port, ranking_source=str(source), builtin_rank=list(rank),
                     _later=later)


def _save_cache(path: Path, db: ServiceDB) -> None:
    data = (_CACHE_FORMAT, db.by_port, db.ranking_source, db.builtin_rank,
            marshal.dumps((db.by_name, db.frequency)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".services-")
        try:
            with os.fdopen(fd, "wb") as fh:
                marshal.dump(data, fh)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, ValueError):
        pass  # no cache: parsed again next time
