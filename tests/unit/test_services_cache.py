"""The parsed service database is cached between runs, and only while its sources are
unchanged; a corrupt cache is ignored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope.targets import services


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    system = tmp_path / "services"
    nmap = tmp_path / "nmap-services"
    system.write_text("ssh 22/tcp\nhttp 80/tcp www # web\n")
    nmap.write_text("ssh\t22/tcp\t0.18\nhttp\t80/tcp\t0.48\nfoo\t7777/udp\t0.001\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PORTSCOPE_SERVICES", str(system))
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", str(nmap))
    services.service_db.cache_clear()
    yield system, nmap
    services.service_db.cache_clear()


def _fresh() -> services.ServiceDB:
    services.service_db.cache_clear()
    return services.service_db()


def test_second_run_reads_the_cache(sources: tuple[Path, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = _fresh()
    assert first.name(80) == "http" and first.lookup("www") == [("tcp", 80)]
    assert first.frequency[("udp", 7777)] == 0.001
    assert len(list((tmp_path / "cache" / "portscope").glob("services-*.marshal"))) == 1

    def no_parsing(*_a: object) -> services.ServiceDB:
        raise AssertionError("parsed again although the cache is valid")

    monkeypatch.setattr(services, "_build", no_parsing)
    assert _fresh() == first


def test_a_changed_source_is_parsed_again(sources: tuple[Path, Path]) -> None:
    system, _nmap = sources
    assert _fresh().name(40123) is None
    system.write_text("ssh 22/tcp\nhttp 80/tcp www\nzz-test 40123/tcp\n")
    st = system.stat()
    os.utime(system, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _fresh().name(40123) == "zz-test"


def test_a_corrupt_cache_is_ignored(sources: tuple[Path, Path], tmp_path: Path) -> None:
    good = _fresh()
    [cache] = (tmp_path / "cache" / "portscope").glob("services-*.marshal")
    for junk in (b"", b"\x00garbage", b"\xe9\x01\x00\x00\x00"):
        cache.write_bytes(junk)
        assert _fresh() == good


def test_an_unwritable_cache_directory_is_no_error(sources: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "blocked").write_text("a file where the directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    assert _fresh().name(22) == "ssh"


def test_the_lazily_decoded_part_falls_back_to_parsing(sources: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    import marshal

    good = _fresh()
    [cache] = (tmp_path / "cache" / "portscope").glob("services-*.marshal")
    fmt, by_port, source, rank, _rest = marshal.loads(cache.read_bytes())
    cache.write_bytes(marshal.dumps((fmt, by_port, source, rank, b"\x00junk")))
    db = _fresh()
    assert db.name(22) == "ssh"  # from the cache
    assert db.lookup("www") == [("tcp", 80)] and db == good  # the rest parsed again
