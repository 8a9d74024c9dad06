"""What every request passes before any route, and what every response carries.

- **Host.** A browser tricked by DNS rebinding sends this server requests for another name (``Host:
  attacker.example``). Only the names the server is bound to are answered: 127.0.0.1, localhost and ::1, the
  configured bind host, the address the connection arrived at, and ``api_allowed_hosts``; with the server's
  port. Any other Host gets 421.
- **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` is another site's, or that a
  browser marks ``Sec-Fetch-Site: cross-site`` (or ``same-site``), gets 403: a page elsewhere cannot make a
  visitor's browser cancel jobs. Clients that are not browsers send neither header and are not affected.
- **Size.** A body over ``api_max_body_bytes`` gets 413, from its declared ``Content-Length`` before a byte of
  it is read, or as soon as a streamed body passes the limit.
- **Address.** A path or query string holding NUL gets 400 (no engine stores NUL in text).
- **Headers.** Every response, errors included, carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options:
  DENY``, ``Referrer-Policy: no-referrer`` and a ``Content-Security-Policy`` allowing only this server's own
  scripts and styles.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# FastAPI's interactive references load their script and styles from a CDN and start with an inline script.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def _name(host: str) -> str:
    """A host name as compared: lower case, no brackets, no trailing dot."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.rstrip(".")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header or an origin's netloc; port None when not given; None if malformed."""
    value = value.strip()
    if not value or any(c in value for c in "/\\@ \t?#"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        name, port_text = value, None
    else:
        name, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else None
    if port_text is not None:
        if not _digits(port_text, 5) or not 0 < int(port_text) < 65536:
            return None
        return _name(name), int(port_text)
    return (_name(name), None) if name else None


def _digits(text: str, most: int) -> bool:
    """ASCII digits only, at most ``most`` of them (``str.isdigit`` also takes superscripts)."""
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(_name(host)).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class HostRule:
    """Which ``Host`` values are this server's."""

    names: frozenset[str]
    """Bound names: answered with the server's own port."""
    any_port: frozenset[str]
    """Allowed names without a port (behind a proxy, whatever port it listens on)."""
    exact: frozenset[tuple[str, int]]
    """Allowed ``name:port`` pairs."""

    @classmethod
    def of(cls, bind_host: str, allowed: Iterable[str] = ()) -> HostRule:
        names = set(LOOPBACK_NAMES)
        if bind_host and not _is_wildcard(bind_host):
            names.add(_name(bind_host))
        any_port: set[str] = set()
        exact: set[tuple[str, int]] = set()
        for entry in allowed:
            parsed = split_host(entry)
            if parsed is None:
                raise ValueError(f"api_allowed_hosts: {entry!r} is not a host name or host:port")
            if parsed[1] is None:
                any_port.add(parsed[0])
            else:
                exact.add((parsed[0], parsed[1]))
        return cls(frozenset(names), frozenset(any_port), frozenset(exact))

    def allows(self, host: str, scope: Scope) -> bool:
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if name in self.any_port or (port is not None and (name, port) in self.exact):
            return True
        server = scope.get("server")
        if port is None:
            port = DEFAULT_PORTS.get(scope.get("scheme", "http"), 80)
        if server:
            server_host, server_port = server[0], server[1]
            if server_port is not None and port != server_port:
                return False
            if server_host and name == _name(str(server_host)):
                return True  # the address the connection arrived at (no DNS name can rebind to it)
        return name in self.names

    def describe(self, scope: Scope) -> str:
        server = scope.get("server")
        port = f":{server[1]}" if server and server[1] else ""
        shown = [f"[{n}]{port}" if ":" in n else f"{n}{port}" for n in sorted(self.names)]
        shown += sorted(self.any_port) + [f"{n}:{p}" for n, p in sorted(self.exact)]
        return ", ".join(shown)


def _origin_problem(headers: dict[bytes, bytes], host: str) -> str | None:
    """Why a state-changing request looks like it comes from another site, or None."""
    fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"the browser marks this request {fetch_site}"
    raw = headers.get(b"origin")
    if raw is None:
        return None
    origin = raw.decode("latin-1").strip()
    if origin.lower() == "null":
        return "Origin is null (a sandboxed or local page)"
    try:
        parts = urlsplit(origin)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return f"Origin {origin!r} is not an origin"
    theirs = split_host(parts.netloc) if parts.scheme and parts.netloc else None
    ours = split_host(host)
    if theirs is None or ours is None:
        return f"Origin {origin!r} is not an origin"
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    if (theirs[0], theirs[1] or default) != (ours[0], ours[1] or default):
        return f"Origin {origin!r} is not this server ({host})"
    return None


def _nul_in_address(scope: Scope) -> bool:
    if "\x00" in scope.get("path", ""):
        return True
    query: bytes = scope.get("query_string", b"")
    return b"\x00" in query or (b"%00" in query.lower() and b"\x00" in unquote_to_bytes(query))


class Guard:
    """The ASGI layer outside everything else (see the module)."""

    def __init__(self, app: ASGIApp, *, hosts: HostRule, max_body_bytes: int) -> None:
        self.app = app
        self.hosts = hosts
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope.get("path") in DOCS_PATHS else CSP).encode()
        limit = self.max_body_bytes
        seen = 0
        too_large = False  # a streamed body went past the limit: whatever the app answers, it is a 413
        started = False

        async def send_from_app(message: Message) -> None:
            nonlocal started
            if too_large and message["type"].startswith("http.response."):
                if not started:
                    started = True
                    await _answer(send_with_headers, 413, _too_large(None, limit))
                return
            if message["type"] == "http.response.start":
                started = True
            await send_with_headers(message)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                message = {**message, "headers": headers}
            await send(message)

        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, detail = refusal
            await _answer(send_with_headers, status, detail)
            return

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # the app reads no further: to it, the client went away
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited_receive, send_from_app)
        except Exception:
            if not too_large or started:
                raise  # (a body cut short may make the app give up: the 413 below is the answer then)
        if too_large and not started:
            started = True
            await _answer(send_with_headers, 413, _too_large(None, limit))

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not host:
            return 400, "the request has no Host header"
        if not self.hosts.allows(host, scope):
            shown = host if len(host) <= 100 else host[:100] + "…"
            return 421, (
                f"this server does not answer for Host {shown!r}: it answers to {self.hosts.describe(scope)} "
                "(add a name to api_allowed_hosts to serve it)"
            )
        if _nul_in_address(scope):
            return 400, "the address holds a NUL character"
        if scope.get("method", "GET").upper() in STATE_CHANGING:
            problem = _origin_problem(headers, host)
            if problem:
                return 403, f"cross-site request refused: {problem}"
        declared = headers.get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not _digits(text, 4000):
                return 400, "Content-Length is not a number"
            if len(text) > 18 or int(text) > self.max_body_bytes:
                return 413, _too_large(text, self.max_body_bytes)
        return None


def _too_large(declared: str | None, limit: int) -> str:
    size = f"{int(declared):,} bytes declared" if declared and len(declared) <= 18 else "longer than that"
    return f"request body too large: {size}; the limit is {limit:,} bytes (api_max_body_bytes)"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
