"""Test tiers and their fixtures.

* unit/ and integration/: always run.
* ``lab`` (every test under tests/lab/, and any test using a lab fixture): network-namespace
  hosts, needs root, ip and iptables. ``postgres`` (any test using ``postgres_url``): the
  machine's PostgreSQL at 127.0.0.1:5432.
* A tier that cannot run is SKIPPED with the reason, except under ``CI=true``, where that is
  a FAILURE; and under CI a session in which a collected tier ran no test at all fails too.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import pytest

from portscope.testing import lab as lablib
from portscope.testing import postgres as pglib
from portscope.testing.tiers import in_ci, skip_or_fail

# Network safety net for the whole session (and every subprocess it starts): portscope
# refuses to scan anything outside the loopback and the lab ranges.
SAFETY_ALLOW = "127.0.0.0/8,::1/128,198.18.0.0/15,2001:db8::/32"
os.environ["PORTSCOPE_SAFETY_ALLOW"] = SAFETY_ALLOW

LAB_DIR = Path(__file__).parent / "lab"
LAB_FIXTURES = {"lab", "lab_host", "module_lab", "module_lab_host", "lab_required"}
POSTGRES_FIXTURES = {"postgres_url"}
TIERS = ("lab", "postgres")


@dataclass
class _TierCounts:
    selected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    deselected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    problems: list[str] = field(default_factory=list)


_counts_key = pytest.StashKey[_TierCounts]()


def _tiers_of(item: pytest.Item) -> list[str]:
    return [t for t in TIERS if item.get_closest_marker(t) is not None]


# --- session hooks --------------------------------------------------------------------------


# tests whose call phase ran, per tier (logreport hooks get no config to stash it on)
_RAN: dict[str, int] = dict.fromkeys(TIERS, 0)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_counts_key] = _TierCounts()
    _RAN.update(dict.fromkeys(TIERS, 0))


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # SIGTERM (a CI timeout, a kill) ends the session like Ctrl-C: fixtures are finalized,
    # so namespaces and databases are removed instead of left behind.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tiers (runs before ``-m`` deselection)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        path = Path(str(item.path))
        if LAB_DIR in path.parents or names & LAB_FIXTURES:
            item.add_marker(pytest.mark.lab)
        if names & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if not items:
        return
    counts = items[0].config.stash[_counts_key]
    for item in items:
        for tier in _tiers_of(item):
            counts.deselected[tier] += 1


def pytest_collection_finish(session: pytest.Session) -> None:
    counts = session.config.stash[_counts_key]
    for item in session.items:
        for tier in _tiers_of(item):
            counts.selected[tier] += 1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or report.skipped:
        return
    for tier in TIERS:
        if tier in report.keywords:
            _RAN[tier] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not in_ci() or exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR):
        return
    config = session.config
    counts = config.stash[_counts_key]
    full_run = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    for tier in TIERS:
        collected = counts.selected[tier] + counts.deselected[tier]
        required = collected > 0 or (tier == "lab" and full_run)
        if required and _RAN[tier] == 0:
            counts.problems.append(
                f"CI=true but no {tier} test ran ({counts.selected[tier]} selected, "
                f"{counts.deselected[tier]} deselected): the {tier} tier must run in CI"
            )
    if counts.problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = terminalreporter.config.stash[_counts_key]
    for problem in counts.problems:
        terminalreporter.write_line(f"TIER FAILURE: {problem}", red=True, bold=True)


# --- the result store ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _private_store(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every portscope process it starts) gets its own default store:
    ``portscope scan`` stores by default and must never write into the user's data dir."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.delenv("PORTSCOPE_DB", raising=False)


# --- scapy is an oracle only -------------------------------------------------------------


def _no_neighbor_lookup(*args: object, **kwargs: object) -> str:
    raise AssertionError(
        "scapy tried to resolve a MAC address (it would send ARP/ND on this machine's real "
        "network): give every Ether() an explicit dst in tests")


@pytest.fixture(autouse=True)
def _scapy_never_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """scapy builds and parses packets for the tests; it must never put one on the wire.
    An ``Ether()`` without ``dst`` makes it resolve the MAC with ARP/ND on the real link."""
    config = sys.modules.get("scapy.config")
    neighbor = getattr(getattr(config, "conf", None), "neighbor", None)
    if neighbor is not None:
        monkeypatch.setattr(neighbor, "resolve", _no_neighbor_lookup)
    for module, name in (("scapy.layers.l2", "getmacbyip"), ("scapy.layers.inet6", "getmacbyip6")):
        mod = sys.modules.get(module)
        if mod is not None:
            monkeypatch.setattr(mod, name, _no_neighbor_lookup)
    sendrecv = sys.modules.get("scapy.sendrecv")
    if sendrecv is not None:
        for name in ("send", "sendp", "sr", "sr1", "srp", "srp1", "sniff"):
            if hasattr(sendrecv, name):
                monkeypatch.setattr(sendrecv, name, _no_neighbor_lookup)


# --- lab fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _lab_ready() -> str | None:
    """Probe the lab once per session and remove leftovers of dead test processes."""
    reason = lablib.unavailable_reason()
    if reason is None:
        lablib.cleanup_stale()
    return reason


def _open_lab(reason: str | None) -> lablib.Lab:
    if reason is not None:
        skip_or_fail(reason, tier="lab")
    return lablib.Lab()


@pytest.fixture
def lab_required(_lab_ready: str | None) -> None:
    """For tests that build their own :class:`Lab`: skip (fail under CI) without the lab."""
    if _lab_ready is not None:
        skip_or_fail(_lab_ready, tier="lab")


@pytest.fixture
def lab(_lab_ready: str | None) -> Iterator[lablib.Lab]:
    """A fresh lab for one test; hosts are torn down after it, also on failure."""
    with _open_lab(_lab_ready) as the_lab:
        yield the_lab


@pytest.fixture
def lab_host(lab: lablib.Lab) -> lablib.LabHost:
    """One fresh lab host (namespace + veth, a /30 and a /64)."""
    return lab.add_host()


@pytest.fixture(scope="module")
def module_lab(_lab_ready: str | None) -> Iterator[lablib.Lab]:
    """A lab shared by a module's tests (for expensive setups); tests must not leave
    host state (rules, listeners) that the next test does not expect."""
    with _open_lab(_lab_ready) as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def module_lab_host(module_lab: lablib.Lab) -> lablib.LabHost:
    return module_lab.add_host()


@pytest.fixture
def own_lab_host(module_lab: lablib.Lab) -> Iterator[lablib.LabHost]:
    """A fresh host of the module's lab for one test, closed (processes killed, namespace
    deleted) after it."""
    host = module_lab.add_host()
    try:
        yield host
    finally:
        host.close()


@pytest.fixture(scope="session")
def nmap_bin() -> str:
    """Path of nmap (the reference scanner); skip, or fail under CI, without it."""
    path = lablib.tool("nmap")
    if path is None:
        skip_or_fail("nmap not installed (Debian package nmap)", tier="lab")
    return path


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _postgres_ready() -> str | None:
    reason = pglib.unavailable_reason()
    if reason is None:
        pglib.cleanup_stale()
    return reason


@pytest.fixture
def postgres_url(_postgres_ready: str | None) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    if _postgres_ready is not None:
        skip_or_fail(_postgres_ready, tier="postgres")
    with pglib.temporary_database() as url:
        yield url
