"""The raw engine's send helper is pinned off the engine's CPU while a scan runs, and the
engine's own affinity is restored afterwards."""

from __future__ import annotations

import os
import socket

import pytest

from portscope.engine.sender import ProcessSender


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_pin_and_unpin() -> None:
    before = os.sched_getaffinity(0)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stand-ins for the raw sockets:
    b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)  # nothing is sent here
    sender = ProcessSender(a.fileno(), b.fileno())
    try:
        allowed = sender.pin()
        assert allowed == before
        mine = os.sched_getaffinity(0)
        theirs = os.sched_getaffinity(sender.proc.pid)
        assert len(mine) == 1 and not mine & theirs and mine | theirs == before
    finally:
        sender.close()
        sender.unpin(allowed)
        a.close()
        b.close()
    assert os.sched_getaffinity(0) == before
    assert sender.failed == 0


def test_unpin_without_pinning_is_harmless() -> None:
    before = os.sched_getaffinity(0)
    ProcessSender.unpin(None)
    assert os.sched_getaffinity(0) == before
