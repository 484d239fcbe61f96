"""The collectors on this machine's own sockets: a listener this test opens on loopback
must show up with this process's PID, in every collector, and the CLI must list it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from portscope.engine import localsockets
from portscope.model import BindScope, Inventory


@pytest.fixture
def own_sockets() -> Iterator[dict[str, tuple[str, int]]]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    tcp6.bind(("::1", 0))
    tcp6.listen(1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        yield {"tcp": ("127.0.0.1", tcp.getsockname()[1]),
               "tcp6": ("::1", tcp6.getsockname()[1]),
               "udp": ("127.0.0.1", udp.getsockname()[1])}
    finally:
        for s in (tcp, tcp6, udp):
            s.close()


@pytest.mark.parametrize("collector", ["auto", "netlink", "procfs", "psutil"])
def test_collectors_find_our_sockets(collector: str,
                                     own_sockets: dict[str, tuple[str, int]]) -> None:
    inv = localsockets.collect(collector)
    assert inv.collector == (collector if collector != "auto" else "netlink")
    by_key = {(s.protocol.value, s.address, s.port): s for s in inv.sockets}
    for name, (addr, port) in own_sockets.items():
        sock = by_key[(name[:3], addr, port)]
        assert sock.scope is BindScope.LOOPBACK
        assert os.getpid() in [p.pid for p in sock.processes]
        assert sock.process == psutil.Process().name()
        assert sock.user  # the socket's owner, or the process's user
    if collector in ("auto", "netlink"):
        assert by_key[("tcp", "::1", own_sockets["tcp6"][1])].v6only is True
    assert any(a.address == "127.0.0.1" for a in inv.addresses)


def test_without_root_process_details_are_partial(monkeypatch: pytest.MonkeyPatch,
                                                  own_sockets: dict[str, tuple[str, int]]
                                                  ) -> None:
    """As a user who may not read other processes' descriptors: only our own sockets get
    a process, and the inventory says so."""
    real_listdir = os.listdir
    me = str(os.getpid())

    def listdir(path: str) -> list[str]:
        parts = str(path).split("/")
        if len(parts) == 4 and parts[3] == "fd" and parts[2] != me:
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(localsockets.os, "listdir", listdir)
    monkeypatch.setattr(localsockets.os, "geteuid", lambda: 1000)
    inv = localsockets.collect("procfs")
    assert inv.process_detail == "partial"
    assert any("process details are partial" in n and "root" in n for n in inv.notes)
    mine = [s for s in inv.sockets if s.processes]
    assert mine and all(p.pid == os.getpid() for s in mine for p in s.processes)


def test_cli_local_json_and_table(own_sockets: dict[str, tuple[str, int]]) -> None:
    proc = subprocess.run([sys.executable, "-m", "portscope", "local", "-t", "--json", "-"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    inv = Inventory.from_dict(json.loads(proc.stdout))
    assert all(s.protocol.value == "tcp" for s in inv.sockets)
    table = subprocess.run([sys.executable, "-m", "portscope", "local"], capture_output=True,
                           text=True, timeout=60, check=False).stdout
    # our listener is in the plain table (stdout is a pipe), and the summary line is too
    assert str(own_sockets["tcp"][1]) in table and "TCP listening" in table


def test_unknown_collector_is_a_usage_error() -> None:
    from portscope.errors import UsageError

    with pytest.raises(UsageError, match="unknown collector"):
        localsockets.collect("bogus")
