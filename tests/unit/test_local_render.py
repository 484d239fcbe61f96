"""Inventory views: plain and Rich tables (hostile process names stay inert) and the
nmap-XML-like run with wildcard binds expanded per local address."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from rich.console import Console

from portscope.local.render import (
    inventory_to_run,
    render_inventory_rich,
    render_inventory_text,
)
from portscope.local.scanfile import parse_scan
from portscope.model import Inventory, ListeningSocket, LocalAddress, SocketProcess
from portscope.report import render

S = ListeningSocket.make
EVIL = "evil\x1b]0;owned\x07[red]x[/red]"


def inventory() -> Inventory:
    procs = (SocketProcess(pid=7, name=EVIL, user="bob"),)
    return Inventory(
        hostname="web1", taken=datetime(2026, 1, 1, tzinfo=UTC), collector="netlink",
        netns="ns1", process_detail="partial", notes=("process details are partial",),
        addresses=(LocalAddress("127.0.0.1", "lo"), LocalAddress("198.18.0.2", "eth0"),
                   LocalAddress("2001:db8::2", "eth0"), LocalAddress("fe80::1", "eth0")),
    ).with_sockets([
        replace(S("tcp", "0.0.0.0", 22, service="ssh"), processes=procs),
        S("tcp", "::", 80, v6only=False, service="http"),
        S("tcp", "127.0.0.1", 5432), S("udp", "2001:db8::2", 53)])


def test_text_and_rich_tables() -> None:
    text = render_inventory_text(inventory())
    assert "network namespace ns1" in text and "process details partial" in text
    assert "\x1b" not in text and "\x07" not in text
    assert "Note: process details are partial" in text
    assert "3 TCP listening, 1 UDP bound: 2 on all addresses" in text
    console = Console(record=True, width=160, force_terminal=True)
    console.print(render_inventory_rich(inventory()))
    shown = console.export_text()
    assert "[red]x[/red]" in shown  # markup in a process name is printed, not applied
    assert "\x1b]0;" not in console.export_text(styles=True)


def test_inventory_as_nmap_xml_expands_wildcards_per_address() -> None:
    run = inventory_to_run(inventory())
    ports = {h.address: sorted((p.protocol.value, p.port) for p in h.ports) for h in run.hosts}
    assert ports == {
        "127.0.0.1": [("tcp", 22), ("tcp", 80), ("tcp", 5432)],
        "198.18.0.2": [("tcp", 22), ("tcp", 80)],  # 80: a dual-stack "::"
        "2001:db8::2": [("tcp", 80), ("udp", 53)],
    }  # link-local fe80::1 is left out
    back = parse_scan(render("xml", run))
    assert {h.address for h in back.hosts} == set(ports)
    ssh = back.hosts[0].port(22)
    assert ssh is not None and ssh.service is not None
    assert "pid 7" in (ssh.service.extrainfo or "") and "user" in (ssh.service.extrainfo or "")
