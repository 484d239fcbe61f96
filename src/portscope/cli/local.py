"""``portscope local``: this host's listening sockets (the netstat/ss view)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Any

import click

from portscope.errors import writing
from portscope.model import Inventory

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def write_text(path: str, text: str) -> None:
    """*text* to *path* (``-``: standard output); a file is replaced only once whole."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with writing(path):
        target = os.path.realpath(path)
        if os.path.exists(target) and not os.path.isfile(target):  # /dev/stdout, a FIFO
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return
        tmp = os.path.join(os.path.dirname(target),
                           f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)


def write_json(path: str, doc: dict[str, Any]) -> None:
    write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def take_inventory(netns: str | None, collector: str) -> Inventory:
    from portscope.engine.localsockets import collect, collect_in_netns

    if netns:
        return collect_in_netns(netns, collector)
    return collect(collector)


def collector_option(func: Any) -> Any:
    from portscope.engine.localsockets import COLLECTORS

    return click.option("--collector", type=click.Choice(COLLECTORS), default="auto",
                        show_default=True,
                        help="where the socket table comes from (auto: netlink like ss, "
                             "then /proc/net, then psutil)")(func)


@click.command("local", context_settings=CONTEXT)
@click.option("--netns", metavar="NAME",
              help="the sockets of network namespace NAME (ip netns list; needs root)")
@collector_option
@click.option("-t", "--tcp", "only_tcp", is_flag=True, help="TCP sockets only")
@click.option("-u", "--udp", "only_udp", is_flag=True, help="UDP sockets only")
@click.option("--json", "-oJ", "json_out", metavar="FILE",
              help="write the inventory as JSON to FILE (compare reads it with --local)")
@click.option("-oX", "xml_out", metavar="FILE",
              help="write nmap-style XML to FILE (one host per local address)")
@click.option("-oN", "normal_out", metavar="FILE", help="write the text table to FILE")
def command(netns: str | None, collector: str, only_tcp: bool, only_udp: bool,
            json_out: str | None, xml_out: str | None, normal_out: str | None) -> None:
    """List this host's listening TCP sockets and bound UDP sockets, IPv4 and IPv6: the
    address they take traffic on (all, loopback, a specific address), port, service,
    process, PID and user. Without root, other users' processes are not shown.

    \b
    Examples:
      portscope local
      sudo portscope local --netns web1 --json web1.json
      portscope local -oX local.xml
    """
    from dataclasses import replace

    from portscope.local.render import (
        inventory_to_run,
        render_inventory_rich,
        render_inventory_text,
    )

    inv = take_inventory(netns, collector)
    if only_tcp != only_udp:
        keep = "tcp" if only_tcp else "udp"
        inv = replace(inv, sockets=tuple(s for s in inv.sockets if s.protocol.value == keep))
    if json_out:
        write_json(json_out, inv.to_dict())
    if xml_out:
        from portscope.report import render

        write_text(xml_out, render("xml", inventory_to_run(inv)))
    if normal_out:
        write_text(normal_out, render_inventory_text(inv))
    if "-" in (json_out, xml_out, normal_out):
        for note in inv.notes:
            click.echo(f"portscope: note: {note}", err=True)
        return
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(render_inventory_rich(inv))
    else:
        sys.stdout.write(render_inventory_text(inv))
