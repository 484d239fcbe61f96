"""The entry point's quick exit: the status of main(), exit handlers run, streams
flushed, and the normal exit whenever something is still running."""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import pytest

import portscope.cli as cli


class Exited(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(os, "_exit", lambda status: (_ for _ in ()).throw(Exited(status)))
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: calls.append("exitfuncs"))
    return calls


@pytest.mark.parametrize(("raised", "status"), [(None, 0), (SystemExit(None), 0),
                                                (SystemExit(64), 64), (SystemExit(3), 3),
                                                (SystemExit("boom"), 1)])
def test_status_of_main(monkeypatch: pytest.MonkeyPatch, exits: list[str], raised: Any,
                        status: int) -> None:
    def fake_main() -> None:
        if raised is not None:
            raise raised

    monkeypatch.setattr(cli, "main", fake_main)
    with pytest.raises(Exited) as got:
        cli.run()
    assert got.value.status == status
    assert exits == ["exitfuncs"]


def test_a_running_thread_gets_the_normal_exit(monkeypatch: pytest.MonkeyPatch,
                                               exits: list[str]) -> None:
    monkeypatch.setattr(cli, "main", lambda: None)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)  # not a daemon: the normal exit joins it
    worker.start()
    try:
        with pytest.raises(SystemExit) as got:
            cli.run()
        assert got.value.code == 0 and exits == []
    finally:
        stop.set()
        worker.join()
