"""HTTP/1.x (RFC 9112): ``GET /`` (status, headers, Server, title, redirect) and
``OPTIONS /`` (allowed methods). Never sends a method that changes anything."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

from portscope import __version__
from portscope.services import rules
from portscope.services.base import (
    HEADER_VALUE_MAX,
    Context,
    Dialog,
    Facts,
    ServiceProtocol,
    bounded_list,
    clean,
    exchange,
    reconnect,
)

USER_AGENT = f"Mozilla/5.0 (compatible; portscope/{__version__})"
BODY_WANTED = 16384  # enough for a <title>; the rest is not read
RESPONSE_LIMIT = 65536
MAX_HEADERS = 64
RISKY_METHODS = ("PUT", "DELETE", "TRACE", "CONNECT", "PATCH", "PROPFIND", "PROPPATCH",
                 "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH")

_STATUS = re.compile(rb"^HTTP/(\d(?:\.\d)?) (\d{3})(?: ([^\r\n]*))?\r?$")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def request(method: str, ctx: Context, path: str = "/") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {ctx.host_header}\r\n"
            f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode()


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete_headers: bool = True

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


def parse_response(data: bytes) -> Response | None:
    """A (maybe partial) HTTP/1.x response, or None when *data* is not one."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.split(b"\n")
    m = _STATUS.match(lines[0])
    if m is None:
        return None
    resp = Response(version=m.group(1).decode(), status=int(m.group(2)),
                    reason=clean(m.group(3) or b"", 100), body=body,
                    complete_headers=bool(sep))
    for raw in lines[1: MAX_HEADERS + 1]:
        line = raw.rstrip(b"\r")
        if b":" not in line:
            continue
        k, _, v = line.partition(b":")
        key = clean(k, 64)
        if key:
            resp.headers.append((key, clean(v, HEADER_VALUE_MAX)))
    return resp


def response_complete(data: bytes) -> bool:
    if not data.startswith(b"HTTP/"):
        return len(data) >= 5 or not b"HTTP/".startswith(data)  # something else: stop
    resp = parse_response(data)
    if resp is None:
        return True
    if not resp.complete_headers:
        return False
    if resp.status < 200 or resp.status in (204, 304):
        return True
    length = resp.header("content-length")
    if length is not None and length.strip().isdigit():
        return len(resp.body) >= min(int(length), BODY_WANTED)
    if (resp.header("transfer-encoding") or "").lower().endswith("chunked") and \
            resp.body.endswith(b"0\r\n\r\n"):
        return True
    return len(resp.body) >= BODY_WANTED or b"</title" in resp.body.lower()


def title_of(body: bytes) -> str | None:
    m = _TITLE.search(body[:BODY_WANTED * 2])
    if m is None:
        return None
    raw = m.group(1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    title = clean(html.unescape(text), 200)
    return title or None


def recognize(data: bytes) -> int:
    return 10 if _STATUS.match(data.split(b"\n", 1)[0]) else 0


def wants_tls(resp: Response) -> bool:
    """The answer of a TLS server to clear-text HTTP (nginx, Apache ...)."""
    body = resp.body[:4096].lower()
    return resp.status == 400 and (b"https port" in body or b"https server" in body
                                   or (b"ssl" in body and b"plain" in body))


def record_response(resp: Response, facts: Facts) -> None:
    facts.identify("http", 10, "probe")
    facts.extra["status"] = resp.status
    facts.extra["headers"] = {k: v for k, v in resp.headers[:MAX_HEADERS]}
    server = resp.header("server")
    if server:
        facts.extra["server"] = server
        rules.match("http-server", server, facts, service="http")
    powered = resp.header("x-powered-by")
    if powered:
        facts.extra["powered_by"] = powered
    title = title_of(resp.body)
    if title:
        facts.extra["title"] = title
    if 300 <= resp.status < 400:
        location = resp.header("location")
        if location:
            facts.extra["redirect"] = location
    auth = resp.header("www-authenticate")
    if auth:
        facts.extra["www_authenticate"] = auth
    _applications(resp, facts)


def _json(body: bytes) -> object:
    try:
        return json.loads(body[:BODY_WANTED].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _applications(resp: Response, facts: Facts) -> None:
    """Well-known applications answering over HTTP (APIs, CI servers ...)."""
    jenkins = resp.header("x-jenkins")
    if jenkins:
        facts.set_product("Jenkins", jenkins.split()[0], cpe=[rules.cpe("a:jenkins:jenkins",
                                                                        jenkins.split()[0])])
    doc = _json(resp.body) if resp.body[:1] in (b"{", b"[") else None
    if isinstance(doc, dict):
        if doc.get("tagline") == "You Know, for Search":
            facts.product = "Elasticsearch REST API"
            ver = doc.get("version")
            number = ver.get("number") if isinstance(ver, dict) else None
            if isinstance(number, str):
                facts.version = clean(number, 40)
                facts.cpe = [rules.cpe("a:elastic:elasticsearch", facts.version)]
            facts.extra["auth_required"] = False
        err = doc.get("error")
        if isinstance(err, dict) and "security_exception" in json.dumps(err)[:2000]:
            facts.product = facts.product or "Elasticsearch REST API"
            facts.extra["auth_required"] = True
    if (resp.header("api-version") and resp.header("docker-experimental") is not None) or \
            (resp.header("server") or "").startswith("Docker/"):
        facts.identify("docker", 10, "probe")
        facts.product = facts.product or "Docker"


def parse_methods(resp: Response) -> list[str] | None:
    values = resp.all("allow") + resp.all("public")
    if not values:
        return None
    methods: list[str] = []
    for v in values:
        methods += [m.strip().upper() for m in v.split(",") if m.strip()]
    return bounded_list(m for m in methods if re.fullmatch(r"[A-Z][A-Z0-9_-]{0,30}", m))


def dialog(ctx: Context, facts: Facts) -> Dialog:
    r = yield from exchange(request("GET", ctx), response_complete, limit=RESPONSE_LIMIT)
    head = r.data.split(b"\r\n\r\n", 1)[0] if r.data.startswith(b"HTTP/") else None
    facts.saw(r.data, banner=head)
    resp = parse_response(r.data)
    if resp is None:
        return
    if wants_tls(resp) and not ctx.tls:
        facts.identify("http", 6, "probe")
        facts.extra["_wants_tls"] = True
        return
    record_response(resp, facts)
    if facts.name == "docker" and ctx.intensity >= 3 and (yield from reconnect()):
        r = yield from exchange(request("GET", ctx, "/version"), response_complete,
                                limit=RESPONSE_LIMIT)
        v = parse_response(r.data)
        if v is not None:
            facts.extra["auth_required"] = v.status in (401, 403)
            doc = _json(v.body)
            if isinstance(doc, dict) and isinstance(doc.get("Version"), str):
                facts.version = clean(doc["Version"], 40)
                facts.cpe = [rules.cpe("a:docker:engine", facts.version)]
    if ctx.intensity >= 3 and (yield from reconnect()):
        r = yield from exchange(request("OPTIONS", ctx), response_complete,
                                limit=RESPONSE_LIMIT)
        opt = parse_response(r.data)
        if opt is not None:
            methods = parse_methods(opt)
            if methods is not None:
                facts.extra["methods"] = methods
                facts.extra["risky_methods"] = [m for m in methods if m in RISKY_METHODS]
            if "server" not in facts.extra:
                server = opt.header("server")
                if server:
                    facts.extra["server"] = server
                    rules.match("http-server", server, facts, service="http")


PROTOCOL = ServiceProtocol(
    name="http", dialog=dialog, recognize=recognize, rarity=1,
    hints=("http", "http-alt", "http-proxy", "webcache", "www", "http-mgmt", "sun-answerbook",
           "docker", "elasticsearch", "wap-wsp", "ipp", "appserv-http", "dbase",
           "radan-http", "upnp", "websm", "xfer", "oa-system", "vcom-tunnel"),
    tls_hints=("https", "https-alt", "ssl/http", "https-wmap", "pcsync-https", "docker-s",
               "sun-sr-https", "oracleas-https"),
)
