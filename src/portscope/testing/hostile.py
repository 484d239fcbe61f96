"""Hostile and fake servers on 127.0.0.1 for service-detection tests (no root needed).

:class:`LoopbackServers` runs asyncio servers in a background thread, each on a port of
127.0.0.1 chosen by the kernel::

    with LoopbackServers() as srv:
        flood = srv.tcp(flood_handler(8 << 20))
        silent = srv.tcp(silent_handler())
        ...  # scan 127.0.0.1 on those ports

Behaviours (``*_handler`` factories): megabytes of data, silence, TLS-looking garbage,
a byte a second, an immediate close, plus small fakes of real protocols (a greeting,
SMTP with STARTTLS, an HTTPS server with a certificate from
:func:`portscope.testing.daemons.make_certificate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopbackServers:
    """asyncio servers on 127.0.0.1 in a background thread; closed on exit."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="loopback-servers")
        self._servers: list[Any] = []
        self.connections = 0
        self.bytes_sent = 0

    def __enter__(self) -> LoopbackServers:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def tcp(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> int:
        """Serve *handler* on a new 127.0.0.1 port (inside TLS with *tls*); the port."""

        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await handler(reader, writer)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError,
                    TimeoutError, asyncio.CancelledError):
                pass  # the client went away, or the servers are shutting down
            finally:
                with contextlib.suppress(Exception):
                    writer.close()

        async def start() -> int:
            server = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=tls)
            self._servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        return int(self._call(start()))

    def udp(self, reply: Callable[[bytes], bytes | None]) -> int:
        """Answer each datagram with ``reply(data)`` (None: stay silent); the port."""

        class Proto(asyncio.DatagramProtocol):
            transport: asyncio.DatagramTransport

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: Any) -> None:
                answer = reply(data)
                if answer is not None:
                    self.transport.sendto(answer, addr)

        async def start() -> int:
            transport, _ = await self.loop.create_datagram_endpoint(
                Proto, local_addr=("127.0.0.1", 0))
            self._servers.append(transport)
            return int(transport.get_extra_info("sockname")[1])

        return int(self._call(start()))

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            for s in self._servers:
                s.close()
            for task in asyncio.all_tasks(self.loop):
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            self._call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.loop.close()


# --------------------------------------------------------------------------------------
# hostile behaviours


def flood_handler(total: int = 64 << 20, chunk: int = 1 << 20) -> Handler:
    """Send *total* bytes (megabytes of printable junk) as fast as the peer reads."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = (b"A" * 63 + b"\n") * (chunk // 64)
        sent = 0
        while sent < total:
            writer.write(block)
            await writer.drain()
            sent += len(block)

    return handle


def silent_handler(hold: float = 120.0) -> Handler:
    """Accept, read whatever comes, never answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold):
                while await reader.read(4096):
                    pass

    return handle


def garbage_handler(size: int = 4096, *, tls_like: bool = True) -> Handler:
    """Answer the first bytes with random garbage that starts like a TLS record."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        head = b"\x16\x03\x03\xff\xff" if tls_like else b""
        writer.write(head + os.urandom(size))
        await writer.drain()
        await reader.read(4096)

    return handle


def trickle_handler(text: bytes = b"220 slow.example ESMTP ready\r\n",
                    interval: float = 1.0) -> Handler:
    """Send *text* one byte every *interval* seconds."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(len(text)):
            writer.write(text[i: i + 1])
            await writer.drain()
            await asyncio.sleep(interval)

    return handle


def close_handler() -> Handler:
    """Accept and close at once (what tcpwrappers do)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return handle


# --------------------------------------------------------------------------------------
# small fakes of real protocols


def greeting_handler(greeting: bytes, *, then: Callable[[bytes], bytes | None] | None = None
                     ) -> Handler:
    """Send *greeting*; answer each line with ``then(line)`` (None: close)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            if not line:
                return
            answer = then(line) if then else None
            if answer is None:
                return
            writer.write(answer)
            await writer.drain()

    return handle


def smtp_starttls_handler(context: ssl.SSLContext, banner: bytes =
                          b"220 mail.example ESMTP Postfix 3.7.11 (Debian/GNU)\r\n") -> Handler:
    """An SMTP server that offers STARTTLS and really upgrades (to test the engine)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        await writer.drain()
        tls = False
        while True:
            line = (await asyncio.wait_for(reader.readline(), 30)).strip().upper()
            if not line:
                return
            if line.startswith(b"EHLO"):
                caps = [b"mail.example", b"PIPELINING", b"SIZE 10240000"]
                caps += [b"AUTH PLAIN LOGIN"] if tls else [b"STARTTLS"]
                writer.write(b"".join(b"250-" + c + b"\r\n" for c in caps[:-1]) +
                             b"250 " + caps[-1] + b"\r\n")
            elif line == b"STARTTLS" and not tls:
                writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(context)
                tls = True
                continue
            elif line == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()

    return handle


def http_handler(server: bytes = b"nginx/1.22.1", title: bytes = b"loopback") -> Handler:
    """A minimal HTTP/1.1 server (one response per connection)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        method = request.split(b" ", 1)[0]
        body = b"<html><head><title>" + title + b"</title></head><body>hi</body></html>"
        if method == b"OPTIONS":
            writer.write(b"HTTP/1.1 200 OK\r\nServer: " + server +
                         b"\r\nAllow: GET, HEAD, OPTIONS, PUT\r\nContent-Length: 0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nServer: " + server + b"\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()

    return handle


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
