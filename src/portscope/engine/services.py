"""Service detection (``-sV``): drives the pure dialogs of :mod:`portscope.services` over
TCP, TLS and UDP with asyncio.

Per open port::

    port-table says TLS (443, 993 ...)  -> TLS handshake, then the protocol inside
    port-table says a client-first protocol (http, redis, postgresql ...) -> its probe
    otherwise -> wait for a greeting; if none comes within a short, RTT-based delay, run
                 the client-first probes (TLS, HTTP, ... by --version-intensity) in
                 parallel while still listening; the first certain answer wins

A greeting or answer that belongs to another protocol is classified
(:func:`portscope.services.identify.classify`) and that protocol's dialog runs on a fresh
connection, so an SSH server on port 80 or a web server on port 22 is named correctly.

Bounds: every read has a byte limit and a deadline; every port has a deadline
(``port_timeout``); connections are limited globally (``concurrency``) and per host (an
adaptive limit that halves when a host refuses or drops connections and grows back on
success). A hostile server costs at most its deadlines and a bounded buffer, and the port
is reported with whatever was learned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from portscope.errors import UsageError
from portscope.model import (
    Host,
    PortResult,
    PortState,
    Protocol,
    Reason,
    ScanRun,
    Service,
    utcnow,
)
from portscope.services import PROTOCOLS, identify
from portscope.services import tls as tlslib
from portscope.services.base import (
    Context,
    Dialog,
    DialogFactory,
    Facts,
    Reconnect,
    Recv,
    Reply,
    Request,
    Response,
    Send,
    StartTLS,
    TLSResult,
)
from portscope.targets import service_db

log = logging.getLogger("portscope.services")

PortCallback = Callable[[str, PortResult], None]

INTENSITY_LIGHT = 2
INTENSITY_ALL = 9
CONFIDENT = 9  # a result this sure ends the search on a port


@dataclass(frozen=True)
class ServiceOptions:
    """Service detection settings (``-sV``, ``--version-intensity`` ...).

    ``timeout`` bounds the wait for any one reply, ``banner_wait`` how long a silent
    connection keeps listening for a greeting; active probes start much earlier (after a
    delay derived from the host's connect RTT). ``port_timeout`` bounds a whole port.
    """

    intensity: int = 7
    timeout: float = 5.0
    connect_timeout: float = 5.0
    banner_wait: float = 5.0
    concurrency: int = 128
    per_host: int = 32
    port_timeout: float = 60.0
    snmp_community: str = "public"
    auth_checks: bool = True
    tls_versions: bool = True
    max_read: int = 262144

    def __post_init__(self) -> None:
        if not 0 <= self.intensity <= 9:
            raise UsageError(f"--version-intensity must be 0..9, not {self.intensity}")
        for name in ("timeout", "connect_timeout", "banner_wait", "port_timeout"):
            if getattr(self, name) <= 0:
                raise UsageError(f"service detection {name.replace('_', ' ')} must be > 0")
        if self.concurrency < 1 or self.per_host < 1:
            raise UsageError("service detection concurrency must be at least 1")


# --------------------------------------------------------------------------------------
# limits


class Limiter:
    """A counting limit whose size can change (per-host connection limit)."""

    def __init__(self, limit: int, maximum: int) -> None:
        self.limit = max(1, limit)
        self.maximum = max(self.limit, maximum)
        self.active = 0
        self._ok = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self) -> None:
        while self.active >= self.limit:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.active
        for fut in list(self._waiters[: max(0, free)]):
            if not fut.done():
                fut.set_result(None)

    def failure(self) -> None:
        self.limit = max(1, self.limit // 2)
        self._ok = 0

    def success(self) -> None:
        if self.limit < self.maximum:
            self._ok += 1
            if self._ok >= self.limit:
                self.limit += 1
                self._ok = 0
                self._wake()


@dataclass
class HostState:
    address: str
    hostname: str | None
    limiter: Limiter
    srtt: float | None = None
    connect_failures: int = 0

    def rtt_sample(self, seconds: float) -> None:
        self.srtt = seconds if self.srtt is None else 0.875 * self.srtt + 0.125 * seconds

    def connect_timeout(self, limit: float) -> float:
        """A first connection attempt to a host that answers quickly need not wait the
        full timeout: a lost SYN (or a NAT that drops a reused source port) costs the
        kernel's 1 s retransmission, a fresh attempt from another port much less."""
        if self.srtt is None:
            return limit
        return min(limit, max(0.5, 10 * self.srtt + 0.25))

    def probe_after(self, server_first_hint: bool) -> float:
        """How long a silent connection waits before client-first probes start: a few
        round trips plus the time a daemon takes to greet, longer where the port table
        says the service greets first."""
        rtt = self.srtt if self.srtt is not None else 0.05
        base = 0.6 if server_first_hint else 0.3
        return min(3.0, base + 6 * rtt)


# --------------------------------------------------------------------------------------
# connections


def make_ssl_context() -> ssl.SSLContext:
    """A client context that talks to anything: no verification, every version and
    cipher the local OpenSSL still has."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ValueError, ssl.SSLError):
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
    return ctx


class Conn:
    """One TCP connection, maybe upgraded to TLS (through memory BIOs, so the same code
    serves implicit TLS and STARTTLS and every read keeps its deadline)."""

    def __init__(self, engine: ServiceEngine, host: HostState, port: int,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.reader = reader
        self.writer = writer
        self.sslobj: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self.sniffed = bytearray()  # raw bytes seen during a TLS handshake (bounded)
        self.closed = False
        self.got_data = False
        self.eof = False
        self.peer_closed = False  # the server closed the connection
        self.default_timeout: float | None = None  # for reads that do not say
        self.on_close: Callable[[Conn], None] | None = None

    # -- raw -------------------------------------------------------------------------
    async def _raw_write(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.engine.options.timeout)

    async def _raw_read(self, n: int, seconds: float) -> bytes:
        if seconds <= 0:
            raise TimeoutError
        data = await asyncio.wait_for(self.reader.read(n), seconds)
        if data:
            self.got_data = True
        else:
            self.peer_closed = True
        return data

    # -- app data --------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            if self.sslobj is not None and self._out is not None:
                self.sslobj.write(data)
                await self._raw_write(self._out.read())
            else:
                await self._raw_write(data)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            if isinstance(exc, ConnectionError):
                self.peer_closed = True
            log.debug("%s:%s send failed: %s", self.host.address, self.port, exc)

    async def read_some(self, n: int, deadline: float) -> bytes:
        """Up to *n* bytes, b"" at EOF; raises TimeoutError at *deadline*."""
        loop = asyncio.get_running_loop()
        if self.sslobj is None or self._in is None:
            data = await self._raw_read(n, deadline - loop.time())
        else:
            while True:
                try:
                    data = self.sslobj.read(n)
                    break
                except ssl.SSLWantReadError:
                    raw = await self._raw_read(65536, deadline - loop.time())
                    if not raw:
                        data = b""
                        break
                    self._in.write(raw)
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    data = b""
                    break
                except ssl.SSLError:
                    data = b""
                    break
                if self._out is not None and self._out.pending:
                    await self._raw_write(self._out.read())
        if data:
            self.got_data = True
        else:
            self.eof = True
        return data

    async def recv(self, req: Recv) -> Reply:
        opts = self.engine.options
        if self.closed:
            return Reply(error="closed")
        loop = asyncio.get_running_loop()
        timeout = req.timeout if req.timeout is not None else \
            (self.default_timeout or opts.timeout)
        deadline = loop.time() + min(timeout, opts.timeout * 3)
        limit = max(1, min(req.limit, opts.max_read))
        buf = bytearray()
        eof = timed_out = False
        error: str | None = None
        while len(buf) < limit:
            if buf and req.complete is not None and _complete(req.complete, bytes(buf)):
                break
            try:
                chunk = await self.read_some(min(65536, limit - len(buf)), deadline)
            except TimeoutError:
                timed_out = True
                break
            except (OSError, ConnectionError) as exc:
                error = str(exc) or type(exc).__name__
                self.peer_closed = True
                break
            if not chunk:
                eof = True
                break
            buf += chunk
        data = bytes(buf[:limit])
        self.engine.bytes_read += len(data)
        return Reply(data, eof=eof, timed_out=timed_out, truncated=len(buf) >= limit,
                     error=error)

    # -- TLS -------------------------------------------------------------------------
    async def start_tls(self) -> str | None:
        """Handshake over this connection; None on success, else why not."""
        eng = self.engine
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = self.host.hostname
        try:
            obj = eng.ssl_context.wrap_bio(incoming, outgoing, server_side=False,
                                           server_hostname=hostname)
        except (ssl.SSLError, ValueError) as exc:
            return f"TLS setup failed: {exc}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.default_timeout or eng.options.timeout)
        try:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        await self._raw_write(outgoing.read())
                    raw = await self._raw_read(65536, deadline - loop.time())
                    if not raw:
                        return "connection closed during the TLS handshake"
                    if len(self.sniffed) < tlslib.RECORD_LIMIT:
                        self.sniffed += raw[: tlslib.RECORD_LIMIT - len(self.sniffed)]
                    incoming.write(raw)
            if outgoing.pending:
                await self._raw_write(outgoing.read())
        except TimeoutError:
            return "TLS handshake timed out"
        except ssl.SSLError as exc:
            return f"TLS handshake failed: {exc.reason or exc}"
        except (OSError, ConnectionError) as exc:
            self.peer_closed = True
            return f"TLS handshake failed: {exc}"
        self.sslobj, self._in, self._out = obj, incoming, outgoing
        return None

    def tls_facts(self, now: datetime) -> dict[str, Any]:
        obj = self.sslobj
        if obj is None:
            return {}
        der = obj.getpeercert(binary_form=True)
        chain: list[bytes] = [der] if der else []
        whole = False
        unverified = getattr(obj, "get_unverified_chain", None)  # Python >= 3.13
        if callable(unverified):
            with contextlib.suppress(Exception):
                got = [c if isinstance(c, bytes) else c.public_bytes() for c in unverified()]
                if got:
                    chain, whole = got, True
        if not whole:
            sniffed = tlslib.HelloParser().parse(bytes(self.sniffed)).certificates
            if sniffed and (not der or sniffed[0] == der):
                chain, whole = sniffed, True
        facts = tlslib.certificate_facts(chain, now, whole_chain=whole) if chain else {}
        version = obj.version()
        if version:
            facts["negotiated_version"] = tlslib.SSL_MODULE_NAMES.get(version, version)
        cipher = obj.cipher()
        if cipher:
            facts["cipher"] = cipher[0]
        return facts

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_close is not None:
            self.on_close(self)
        with contextlib.suppress(Exception):
            self.writer.close()


def _complete(fn: Callable[[bytes], bool], data: bytes) -> bool:
    try:
        return bool(fn(data))
    except Exception:
        return True  # a parser that chokes on the bytes has seen enough


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(exc)


class UDPConn:
    """A connected UDP socket: datagrams out, datagrams (or ICMP errors) in."""

    def __init__(self, engine: ServiceEngine, transport: asyncio.DatagramTransport,
                 proto: _Datagrams) -> None:
        self.engine = engine
        self.transport = transport
        self.proto = proto
        self.last = b""
        self.answered = False
        self.unreachable = False

    async def send(self, data: bytes) -> None:
        self.last = data
        with contextlib.suppress(OSError):
            self.transport.sendto(data)

    async def recv(self, req: Recv) -> Reply:
        opts = self.engine.options
        timeout = req.timeout if req.timeout is not None else min(opts.timeout, 2.0)
        for attempt in range(req.retries + 1):
            if attempt:
                await self.send(self.last)
            try:
                item = await asyncio.wait_for(self.proto.queue.get(), timeout)
            except TimeoutError:
                continue
            if isinstance(item, Exception):
                if isinstance(item, ConnectionRefusedError):
                    self.unreachable = True
                    return Reply(error="port unreachable")
                return Reply(error=str(item))
            self.answered = True
            data = item[: min(req.limit, opts.max_read)]
            self.engine.bytes_read += len(data)
            return Reply(data)
        return Reply(timed_out=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()


# --------------------------------------------------------------------------------------
# the engine


@dataclass
class _PortWork:
    """Shared state of the tasks working on one port."""

    host: HostState
    port: int
    hint: str | None
    tried: set[str] = field(default_factory=set)
    results: list[Facts] = field(default_factory=list)
    connections: int = 0
    silent_closes: int = 0
    found: asyncio.Event = field(default_factory=asyncio.Event)
    winner: asyncio.Task[Any] | None = None
    conns: set[Conn] = field(default_factory=set)  # open connections (closed at the end)

    def check(self, facts: Facts) -> None:
        """Note the first certain identification (and the task that made it)."""
        if not self.found.is_set() and facts.identified and facts.confidence >= CONFIDENT:
            self.winner = asyncio.current_task()
            self.found.set()

    def closed(self, conn: Conn) -> None:
        self.conns.discard(conn)
        if conn.peer_closed and not conn.got_data:
            self.silent_closes += 1

    def add(self, facts: Facts) -> Facts:
        self.results.append(facts)
        return facts


class ServiceEngine:
    def __init__(self, options: ServiceOptions, now: datetime | None = None) -> None:
        self.options = options
        self.now = now or utcnow()
        self.ssl_context = make_ssl_context()
        self._global = asyncio.Semaphore(options.concurrency)
        self.hosts: dict[str, HostState] = {}
        self.connections = 0
        self.bytes_read = 0

    def host_state(self, host: Host) -> HostState:
        hs = self.hosts.get(host.address)
        if hs is None:
            hs = HostState(host.address, host.hostnames[0] if host.hostnames else None,
                           Limiter(self.options.per_host, self.options.per_host))
            if host.rtt_ms is not None:
                hs.srtt = host.rtt_ms / 1000
            self.hosts[host.address] = hs
        return hs

    def context(self, hs: HostState, port: int, *, transport: str = "tcp", tls: bool = False,
                first: bytes = b"") -> Context:
        o = self.options
        return Context(address=hs.address, port=port, transport=transport, tls=tls,
                       hostname=hs.hostname, intensity=o.intensity,
                       snmp_community=o.snmp_community, auth_checks=o.auth_checks,
                       now=self.now, first=first, timeout=o.timeout,
                       nonce=secrets.randbits(31))

    # -- opening -----------------------------------------------------------------------
    async def open(self, work: _PortWork, *, tls: bool = False) -> Conn | None:
        """A fresh connection (holding a global and a per-host slot until closed);
        with *tls*, already through the handshake."""
        hs = work.host
        for attempt in range(2):
            await self._global.acquire()
            try:
                await hs.limiter.acquire()
            except BaseException:  # cancelled while waiting for a host slot
                self._global.release()
                raise
            t0 = time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(hs.address, work.port, limit=2 ** 17),
                    hs.connect_timeout(self.options.connect_timeout) if attempt == 0
                    else self.options.connect_timeout)
            except asyncio.CancelledError:
                self._global.release()
                hs.limiter.release()
                raise
            except (OSError, TimeoutError, ConnectionError) as exc:
                self._global.release()
                hs.limiter.release()
                hs.connect_failures += 1
                hs.limiter.failure()
                log.debug("%s:%s connect failed (%s)", hs.address, work.port, exc)
                if attempt == 0:
                    # a refusal or drop under load (listen backlog, MaxStartups): once more
                    await asyncio.sleep(0.1 if isinstance(exc, ConnectionRefusedError) else 0.3)
                    continue
                return None
            hs.rtt_sample(time.monotonic() - t0)
            hs.limiter.success()
            self.connections += 1
            work.connections += 1
            conn = _SlotConn(self, hs, work.port, reader, writer)
            conn.on_close = work.closed
            work.conns.add(conn)
            if tls:
                try:
                    err = await conn.start_tls()
                except BaseException:
                    conn.close()
                    raise
                if err is not None:
                    conn.close()
                    return None
            return conn
        return None

    async def open_udp(self, hs: HostState, port: int) -> UDPConn | None:
        await self._global.acquire()
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_datagram_endpoint(
                _Datagrams, remote_addr=(hs.address, port))
        except asyncio.CancelledError:
            self._global.release()
            raise
        except OSError as exc:
            self._global.release()
            log.debug("%s:%s/udp: %s", hs.address, port, exc)
            return None
        self.connections += 1
        return _SlotUDP(self, transport, proto)

    # -- driving a dialog ----------------------------------------------------------------
    async def drive(self, work: _PortWork, conn: Conn | UDPConn | None, factory: DialogFactory,
                    ctx: Context, facts: Facts, *, hello: str | None = None,
                    hello_result: list[tlslib.HelloResult] | None = None,
                    record: list[Response] | None = None) -> None:
        """Run one dialog to its end on *conn* (closed afterwards). With *hello*, a
        :class:`StartTLS` sends a raw ClientHello of that version instead of handshaking,
        stores the answer in *hello_result* and ends the dialog. *record* receives every
        answer given to the dialog (to replay it in tests)."""
        dialog: Dialog = factory(ctx, facts)
        try:
            req: Request = dialog.send(None)
            while True:
                response: Response = None
                if isinstance(req, Send):
                    log.debug("%s:%s %s -> %r", ctx.address, ctx.port, factory.__module__,
                              req.data[:60])
                    if conn is not None:
                        await conn.send(req.data)
                elif isinstance(req, Recv):
                    response = await conn.recv(req) if conn is not None else \
                        Reply(error="not connected")
                    log.debug("%s:%s %s <- %r%s", ctx.address, ctx.port, factory.__module__,
                              response.data[:60], " (timeout)" if response.timed_out else
                              " (eof)" if response.eof else "")
                elif isinstance(req, StartTLS):
                    if not isinstance(conn, Conn):
                        response = TLSResult(False, error="not a TCP connection")
                    elif hello is not None:
                        res = await self._raw_hello(conn, hello)
                        if hello_result is not None:
                            hello_result.append(res)
                        break
                    else:
                        response = await self._starttls(conn, ctx, facts, req)
                elif isinstance(req, Reconnect):
                    if conn is not None:
                        conn.close()
                    conn = None
                    if ctx.transport != "udp":
                        conn = await self.open(work, tls=ctx.tls)
                    response = Reply() if conn is not None else Reply(error="reconnect failed")
                if record is not None and not isinstance(req, Send):
                    record.append(response)
                req = dialog.send(response)
                work.check(facts)
        except StopIteration:
            work.check(facts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a parser bug must not end the scan: record, go on
            log.warning("%s:%s %s dialog failed: %r", ctx.address, ctx.port,
                        factory.__module__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            dialog.close()
            if conn is not None:
                conn.close()

    async def _starttls(self, conn: Conn, ctx: Context, facts: Facts,
                        req: StartTLS) -> TLSResult:
        err = await conn.start_tls()
        if err is not None:
            return TLSResult(False, error=err)
        tls = conn.tls_facts(self.now)
        if req.starttls and not ctx.tls:
            tls["starttls"] = True
        facts.tls = {**(facts.tls or {}), **tls}
        return TLSResult(True, tls)

    async def _raw_hello(self, conn: Conn, version: str) -> tlslib.HelloResult:
        hello = tlslib.client_hello(version, random=secrets.token_bytes(32),
                                    key_share=secrets.token_bytes(32),
                                    server_name=conn.host.hostname)
        await conn.send(hello)
        reply = await conn.recv(Recv(tlslib.hello_complete, limit=tlslib.RECORD_LIMIT))
        return tlslib.HelloParser().parse(reply.data)

    async def run(self, work: _PortWork, name: str, *, conn: Conn | None = None,
                  first: bytes = b"", tls: bool = False, probing: bool = False) -> Facts:
        """Run protocol *name*'s TCP dialog (on *conn*, else on a fresh connection).
        *probing*: a guess on a port nothing else placed (its silence costs less)."""
        facts = work.add(Facts())
        proto = PROTOCOLS[name]
        if proto.dialog is None:
            return facts
        if conn is None:
            conn = await self.open(work, tls=tls)
            if conn is None:
                return facts
        if probing:
            conn.default_timeout = self.probe_timeout
        if tls:
            facts.tunnel = "ssl"
        await self.drive(work, conn, proto.dialog, self.context(work.host, work.port, tls=tls,
                                                                first=first), facts)
        return facts

    # -- TCP -----------------------------------------------------------------------------
    async def tcp_port(self, work: _PortWork) -> None:
        plan = identify.tcp_plan(work.hint, work.port, self.options.intensity)
        hinted = PROTOCOLS.get(plan.hinted or "")
        if plan.tls_first:
            work.tried.add(identify.TLS)
            f = await self.tls_probe(work, plan.hinted)
            if f.confidence >= CONFIDENT:
                return
            await self.follow(work, f)
            if _best(work.results, CONFIDENT):
                return
        elif hinted is not None and not hinted.server_first and hinted.dialog is not None:
            work.tried.add(hinted.name)
            f = await self.run(work, hinted.name)
            if f.confidence >= CONFIDENT:
                return
            if f.extra.get("_wants_tls"):
                work.tried.add(identify.TLS)
                tf = await self.tls_probe(work, hinted.name)
                if tf.confidence >= CONFIDENT:
                    return
            await self.follow(work, f)
            if _best(work.results, CONFIDENT):
                return
        await self.discover(work, plan, server_first_hint=bool(hinted and hinted.server_first))

    async def follow(self, work: _PortWork, facts: Facts) -> None:
        """What a probe got but could not place: classify it and run that protocol."""
        if (facts.identified and facts.confidence >= CONFIDENT) or not facts.raw:
            return
        for _score, name in identify.classify(facts.raw, work.hint):
            if name in work.tried:
                continue
            work.tried.add(name)
            if name == identify.TLS:
                f = await self.tls_probe(work, None)
            else:
                f = await self.run(work, name)
            if f.confidence >= CONFIDENT:
                return

    async def null_probe(self, work: _PortWork, wait: float) -> None:
        """Connect and listen for a greeting; run the protocol it belongs to."""
        conn = await self.open(work)
        if conn is None:
            return
        try:
            await self._greeted(work, conn, wait)
        finally:
            conn.close()  # (a no-op when a dialog took it over and closed it)

    async def _greeted(self, work: _PortWork, conn: Conn, wait: float) -> None:
        reply = await conn.recv(Recv(lambda d: True, limit=4096, timeout=wait))
        if not reply.data:
            conn.close()
            return
        data = reply.data
        candidates = [(s, n) for s, n in identify.classify(data, work.hint)
                      if n != identify.TLS and PROTOCOLS[n].server_first]
        if not candidates:
            more = await conn.recv(Recv(lambda d: b"\n" in data + d, limit=4096, timeout=1.0))
            conn.close()
            facts = work.add(Facts(method="banner"))
            facts.saw(data + more.data)
            await self.follow(work, facts)
            return
        first = True
        for _score, name in candidates:
            if name in work.tried:
                continue
            work.tried.add(name)
            if first:
                f = await self.run(work, name, conn=conn, first=data)
                first = False
            else:
                f = await self.run(work, name)
            if f.confidence >= CONFIDENT:
                break
        if first:
            conn.close()

    async def discover(self, work: _PortWork, plan: identify.Plan, *,
                       server_first_hint: bool) -> None:
        """Listen for a greeting for a short, RTT-based while; then (nothing certain yet)
        run the client-first probes in parallel. A greeting that comes later still
        arrives on the probes' connections, which classify it."""
        await self.null_probe(work, work.host.probe_after(server_first_hint))
        if _best(work.results, CONFIDENT):
            return
        tasks: set[asyncio.Task[Any]] = set()
        try:
            for name in plan.probes:
                if name in work.tried:
                    continue
                work.tried.add(name)
                if name == identify.TLS:
                    tasks.add(asyncio.create_task(self.tls_probe(work, None, then_follow=True)))
                else:
                    tasks.add(asyncio.create_task(self._probe_and_follow(work, name)))
            await self._until_found(work, tasks)
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _until_found(work: _PortWork, tasks: set[asyncio.Task[Any]]) -> None:
        """Wait for the probes; once one is certain, cancel the others and let it finish
        its dialog (the facts it gathers after identifying)."""
        found = asyncio.create_task(work.found.wait())
        try:
            pending = set(tasks)
            while pending and not work.found.is_set():
                _done, pending = await asyncio.wait(pending | {found},
                                                    return_when=asyncio.FIRST_COMPLETED)
                pending.discard(found)
            if work.found.is_set():
                for t in tasks:
                    if t is not work.winner and not t.done():
                        t.cancel()
                if work.winner in tasks and work.winner is not None:
                    await asyncio.gather(work.winner, return_exceptions=True)
        finally:
            found.cancel()

    @property
    def probe_timeout(self) -> float:
        """How long a guess on an unknown port waits for an answer: the full timeout,
        but at most 2 s at light intensities (a quiet port must not make them slow)."""
        o = self.options
        return o.timeout if o.intensity > INTENSITY_LIGHT else min(o.timeout, 2.0)

    async def _probe_and_follow(self, work: _PortWork, name: str) -> None:
        f = await self.run(work, name, probing=True)
        if f.extra.get("_wants_tls") and identify.TLS not in work.tried:
            work.tried.add(identify.TLS)
            await self.tls_probe(work, name)
            return
        await self.follow(work, f)

    async def tls_probe(self, work: _PortWork, inner: str | None, *,
                        then_follow: bool = False) -> Facts:
        """TLS handshake; then what speaks inside (the hinted protocol, a greeting, or
        HTTP); meanwhile the protocol versions the server accepts."""
        facts = work.add(Facts())
        conn = await self.open(work)
        if conn is None:
            return facts
        if then_follow:  # a guess on an unknown port
            conn.default_timeout = self.probe_timeout
        try:
            return await self._tls_probe(work, conn, facts, inner, then_follow=then_follow)
        finally:
            conn.close()

    async def _tls_probe(self, work: _PortWork, conn: Conn, facts: Facts, inner: str | None,
                         *, then_follow: bool) -> Facts:
        err = await conn.start_tls()
        if err is not None:
            facts.saw(bytes(conn.sniffed))
            conn.close()
            if then_follow:
                await self.follow(work, facts)
            return facts
        facts.tls = conn.tls_facts(self.now)
        facts.tunnel = "ssl"
        facts.identify("unknown", 7, "probe")
        versions: asyncio.Task[tuple[list[str], list[bytes]]] | None = None
        if self.options.tls_versions and self.options.intensity >= 3:
            versions = asyncio.create_task(self.tls_versions(work, None))
        try:
            await self._inside_tls(work, conn, inner, facts)
        except BaseException:
            if versions is not None:
                versions.cancel()
                await asyncio.gather(versions, return_exceptions=True)
            raise
        if versions is not None:
            accepted, chain = await versions
            self._add_versions(facts, accepted, chain)
        return facts

    async def _inside_tls(self, work: _PortWork, conn: Conn, inner: str | None,
                          facts: Facts) -> None:
        proto = PROTOCOLS.get(inner or "")
        first = b""
        if proto is None or proto.dialog is None or proto.server_first:
            reply = await conn.recv(Recv(lambda d: True, limit=4096,
                                         timeout=work.host.probe_after(False)))
            first = reply.data
            if first:
                cands = [n for _s, n in identify.classify(first, work.hint)
                         if n != identify.TLS and PROTOCOLS[n].dialog is not None]
                proto = PROTOCOLS[cands[0]] if cands else None
                if proto is None:
                    facts.saw(first)
                    conn.close()
                    return
            elif reply.eof:
                conn.close()
                return
            else:
                proto = PROTOCOLS["http"]
        inner_facts = Facts()
        if proto.dialog is not None:
            await self.drive(work, conn, proto.dialog,
                             self.context(work.host, work.port, tls=True, first=first),
                             inner_facts)
        self._merge_inner(facts, inner_facts)

    @staticmethod
    def _merge_inner(facts: Facts, inner: Facts) -> None:
        tls = facts.tls
        if inner.identified:
            facts.name = None
            facts.confidence = 0
            facts.merge(inner)
            facts.tunnel = "ssl"
        elif inner.raw:
            facts.saw(inner.raw)
        facts.tls = tls if not inner.tls else {**(tls or {}), **inner.tls}

    async def tls_versions(self, work: _PortWork, prelude: DialogFactory | None
                           ) -> tuple[list[str], list[bytes]]:
        """The TLS versions the server accepts (one raw ClientHello per version, in
        parallel, behind *prelude* for STARTTLS) and the certificate chain it sent."""

        async def one(version: str) -> tlslib.HelloResult | None:
            conn = await self.open(work)
            if conn is None:
                return None
            if prelude is None:
                try:
                    return await self._raw_hello(conn, version)
                finally:
                    conn.close()
            holder: list[tlslib.HelloResult] = []
            await self.drive(work, conn, prelude, self.context(work.host, work.port), Facts(),
                             hello=version, hello_result=holder)
            return holder[0] if holder else None

        results = await asyncio.gather(*(one(v) for v in tlslib.VERSIONS),
                                       return_exceptions=True)
        accepted: set[str] = set()
        chain: list[bytes] = []
        for res in results:
            if isinstance(res, tlslib.HelloResult) and res.accepted and \
                    res.version in tlslib.VERSIONS:
                accepted.add(res.version)
                if res.certificates and len(res.certificates) > len(chain):
                    chain = res.certificates
        order = list(tlslib.VERSIONS)
        return sorted(accepted, key=order.index), chain

    def _add_versions(self, facts: Facts, accepted: list[str], chain: list[bytes]) -> None:
        tls = dict(facts.tls or {})
        found = set(accepted)
        if tls.get("negotiated_version") in tlslib.VERSIONS:
            found.add(tls["negotiated_version"])
        order = list(tlslib.VERSIONS)
        tls["versions"] = sorted(found, key=order.index)
        if chain and "chain_length" not in tls:
            tls["chain_length"] = len(chain)
        if chain and not tls.get("sha256"):
            tls.update({k: v for k, v in tlslib.certificate_facts(chain, self.now,
                                                                    whole_chain=True).items()
                        if k not in tls})
        facts.tls = tls

    # -- UDP -----------------------------------------------------------------------------
    async def udp_port(self, work: _PortWork) -> bool:
        """Probe a UDP port; True if anything answered."""
        plan = identify.udp_plan(work.hint, work.port, self.options.intensity)
        answered = False

        async def one(name: str) -> None:
            nonlocal answered
            proto = PROTOCOLS[name]
            if proto.udp is None:
                return
            conn = await self.open_udp(work.host, work.port)
            if conn is None:
                return
            try:
                facts = work.add(Facts())
                await self.drive(work, conn, proto.udp,
                                 self.context(work.host, work.port, transport="udp"), facts)
            finally:
                conn.close()
            answered = answered or conn.answered

        # the hinted protocol first, alone; then the rest together
        names = list(plan.udp)
        if plan.hinted:
            await one(plan.hinted)
            names = [n for n in names if n != plan.hinted]
            if _best(work.results, CONFIDENT):
                return True
        if names:
            tasks = [asyncio.create_task(one(n)) for n in names]
            try:
                pending: set[asyncio.Task[None]] = set(tasks)
                while pending:
                    _done, pending = await asyncio.wait(pending,
                                                        return_when=asyncio.FIRST_COMPLETED)
                    if _best(work.results, CONFIDENT):
                        break
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return answered or any(f.raw for f in work.results)

    # -- STARTTLS versions -----------------------------------------------------------------
    async def starttls_versions(self, work: _PortWork, facts: Facts) -> None:
        proto = PROTOCOLS.get(facts.name or "")
        if proto is None or proto.starttls is None or not facts.tls or \
                not facts.tls.get("starttls") or "versions" in facts.tls:
            return
        if not self.options.tls_versions or self.options.intensity < 3:
            return
        accepted, chain = await self.tls_versions(work, proto.starttls)
        self._add_versions(facts, accepted, chain)

    # -- one port ------------------------------------------------------------------------
    async def port(self, hs: HostState, p: PortResult) -> PortResult:
        hint = p.service.name if p.service is not None else \
            service_db().name(p.port, p.protocol.value)
        work = _PortWork(hs, p.port, hint)
        udp_answer = False
        try:
            async with asyncio.timeout(self.options.port_timeout):
                if p.protocol is Protocol.TCP:
                    await self.tcp_port(work)
                    best = _best(work.results, 1)
                    if best is not None:
                        await self.starttls_versions(work, best)
                else:
                    udp_answer = await self.udp_port(work)
        except TimeoutError:
            log.debug("%s:%s/%s: port timeout", hs.address, p.port, p.protocol.value)
        except Exception as exc:
            log.warning("%s:%s/%s: service detection failed: %r", hs.address, p.port,
                        p.protocol.value, exc)
        finally:
            for conn in list(work.conns):  # whatever a cancelled probe left open
                conn.close()
        svc = self.service_of(work, hint)
        result = replace(p, service=svc)
        if p.protocol is Protocol.UDP and udp_answer and p.state is not PortState.OPEN:
            result = replace(result, state=PortState.OPEN, reason=Reason.UDP_RESPONSE)
        return result

    def service_of(self, work: _PortWork, hint: str | None) -> Service:
        best = _best(work.results, 1)
        if best is not None:
            return best.to_service()
        banner = next((f.banner for f in work.results if f.banner), None)
        tls = next((f.tls for f in work.results if f.tls), None)
        if work.connections and work.silent_closes >= work.connections and not banner:
            return Service(name="tcpwrapped", method="probe", confidence=8,
                           extra={"tcpwrapped": True})
        extra: dict[str, Any] = {}
        return Service(name=hint or "unknown", banner=banner, tls=tls, extra=extra,
                       method="port-table", confidence=3 if hint else 0)


class _SlotConn(Conn):
    """A Conn that gives its global and per-host slots back when closed."""

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self.engine._global.release()
        self.host.limiter.release()


class _SlotUDP(UDPConn):
    _released = False

    def close(self) -> None:
        super().close()
        if not self._released:
            self._released = True
            self.engine._global.release()


def _best(results: Iterable[Facts], minimum: int) -> Facts | None:
    best: Facts | None = None
    for f in results:
        if f.identified and f.confidence >= minimum and (best is None or
                                                         f.confidence > best.confidence):
            best = f
    return best


# --------------------------------------------------------------------------------------
# public API


def wanted(p: PortResult) -> bool:
    """Ports service detection probes: open TCP, open and open|filtered UDP."""
    if p.protocol is Protocol.TCP:
        return p.state is PortState.OPEN
    return p.state in (PortState.OPEN, PortState.OPEN_FILTERED)


class Control:
    """Lets another party (a signal handler, the Scanner) stop a running detection; ports
    already decided are kept."""

    def __init__(self) -> None:
        self.stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def stop(self) -> None:
        self.stopped = True
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._task.cancel)


async def detect_async(run: ScanRun, options: ServiceOptions | None = None, *,
                       on_port: PortCallback | None = None,
                       control: Control | None = None) -> ScanRun:
    """:func:`detect` inside a running event loop."""
    opts = options or ServiceOptions()
    engine = ServiceEngine(opts)
    slots = asyncio.Semaphore(max(1, opts.concurrency))
    t0 = time.monotonic()
    updated: dict[tuple[str, str, int], PortResult] = {}

    async def one(host: Host, p: PortResult) -> None:
        async with slots:
            result = await engine.port(engine.host_state(host), p)
        updated[(host.address, result.protocol.value, result.port)] = result
        if on_port is not None:
            on_port(host.address, result)

    todo = [(h, p) for h in run.hosts for p in h.ports if wanted(p)]
    complete = True
    tasks: list[asyncio.Task[None]] = []
    if control is not None:
        control._loop = asyncio.get_running_loop()
        control._task = asyncio.current_task()
    try:
        if control is None or not control.stopped:
            tasks = [asyncio.create_task(one(h, p)) for h, p in todo]
            await asyncio.gather(*tasks)
        else:
            complete = False
    except asyncio.CancelledError:
        complete = False
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if control is not None:
            control._task = None
    hosts = []
    for h in run.hosts:
        ports = tuple(updated.get((h.address, p.protocol.value, p.port), p) for p in h.ports)
        hosts.append(replace(h, ports=ports))
    identified = sum(1 for r in updated.values() if r.service is not None and r.service.detected)
    stats = {"ports": len(todo), "probed": len(updated), "identified": identified,
             "duration_s": round(time.monotonic() - t0, 3), "complete": complete,
             "connections": engine.connections, "bytes_read": engine.bytes_read,
             "connections_left_open": max(sum(h.limiter.active for h in engine.hosts.values()),
                                          opts.concurrency - engine._global._value),
             "intensity": opts.intensity}
    extra = {**run.extra, "service_detection": stats}
    return replace(run, hosts=tuple(hosts), extra=extra)


def detect(run: ScanRun, options: ServiceOptions | None = None, *,
           on_port: PortCallback | None = None, control: Control | None = None) -> ScanRun:
    """Probe the open ports of *run* (TCP, and UDP open or open|filtered) and return the
    run with ``PortResult.service`` filled. *on_port* is called as each port is decided.
    A UDP port that answers becomes ``open`` (reason ``udp-response``). A port-table
    guess stays ``method="port-table"``: it is never shown as a detection. *control*
    can stop it early (what was decided is kept)."""
    return asyncio.run(detect_async(run, options, on_port=on_port, control=control))
