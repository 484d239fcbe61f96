"""recvmmsg through ctypes (the raw engine's receive path) on a loopback UDP socket: every
datagram lands in its slot with its length, an empty socket gives 0, and more datagrams
than slots come in several calls without loss."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from portscope.engine.rawsock import BatchReceiver


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        tx.connect(rx.getsockname())
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def _read_all(b: BatchReceiver) -> list[bytes]:
    got: list[bytes] = []
    while True:
        k = b.receive()
        if not k:
            return got
        for i in range(k):
            n = b.lengths[i * 16 + 14]
            got.append(bytes(b.buffer[i * b.SLOT:i * b.SLOT + n]))


def test_datagrams_land_in_slots(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    b = BatchReceiver(rx.fileno())
    assert b.receive() == 0  # nothing waiting: no error, no block
    sent = [bytes([i]) * (1 + i * 7) for i in range(3 * b.SLOTS + 5)]
    for d in sent:
        tx.send(d)
    assert _read_all(b) == sent


def test_a_datagram_longer_than_a_slot_is_cut(pair: tuple[socket.socket, socket.socket]
                                              ) -> None:
    rx, tx = pair
    b = BatchReceiver(rx.fileno())
    tx.send(b"x" * (b.SLOT + 100))
    tx.send(b"after")
    assert _read_all(b) == [b"x" * b.SLOT, b"after"]
