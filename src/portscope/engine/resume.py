"""A small scan state file, so an interrupted scan (Ctrl-C, a crash) continues later
without re-sending what was answered: ``portscope scan --state FILE ...`` writes it as
results arrive, ``portscope scan --resume FILE`` continues it.

The contract (the store builds ``--resume`` on the same idea): a scan's position is its
seed and shard plus the set of decided (scan type, address, protocol, port); the same seed
gives the same ``ProbeSpace.walk()`` order, so resuming = walking again and skipping the
decided probes (``filter_decided``). Format: JSON Lines; the first line is the header,
then one line per decided port, flushed as it is decided (a crash loses at most the
lines the OS had not written).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from portscope.errors import DataError, reading, writing
from portscope.model import PortResult
from portscope.targets.permutation import Probe

FORMAT = "portscope-scan-state/1"


@dataclass
class ScanState:
    header: dict[str, Any]
    decided: dict[str, set[tuple[str, str, int]]] = field(default_factory=dict)
    results: list[tuple[str, str, PortResult]] = field(default_factory=list)  # (type, addr, r)

    @property
    def seed(self) -> int:
        return int(self.header["seed"])


def parse_state(text: str, path: str = "state file") -> ScanState:
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{path}: empty scan state file")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise DataError(f"{path}: not a portscope scan state file") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{path}: not a portscope scan state file ({FORMAT})")
    state = ScanState(header)
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            flag = str(d["t"])
            addr = str(d["a"])
            result = PortResult.from_dict(d["r"])
        except (ValueError, KeyError, TypeError) as exc:
            if n == len(lines):  # a line cut short by a crash: ignore it
                break
            raise DataError(f"{path}:{n}: malformed state line ({exc})") from None
        except Exception as exc:  # a DataError from the model
            raise DataError(f"{path}:{n}: {exc}") from None
        state.decided.setdefault(flag, set()).add((addr, result.protocol.value, result.port))
        state.results.append((flag, addr, result))
    return state


def read_state(path: str) -> ScanState:
    with reading(path), open(path, encoding="utf-8") as fh:
        return parse_state(fh.read(), path)


def filter_decided(probes: Iterator[Probe], decided: set[tuple[str, str, int]]
                   ) -> Iterator[Probe]:
    """The walk without the probes already decided (the walk itself when none are: no
    generator layer on the engine's hot path)."""
    if not decided:
        return probes
    return (p for p in probes if (p.address, p.protocol, p.port) not in decided)


class StateWriter:
    """Appends decided ports to a state file (creating it with *header* if new)."""

    def __init__(self, path: str, header: dict[str, Any], *, append: bool) -> None:
        self.path = path
        with writing(path):
            self._fh: IO[str] = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
            if not append:
                self._fh.write(json.dumps({"format": FORMAT, **header}) + "\n")
                self._fh.flush()

    def port(self, flag: str, address: str, result: PortResult) -> None:
        with writing(self.path):
            self._fh.write(json.dumps({"t": flag, "a": address, "r": result.to_dict()},
                                      separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()
