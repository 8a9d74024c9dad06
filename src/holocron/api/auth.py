"""Who may talk to the server: anyone on loopback, everyone else only with the bearer token.

A server bound to a loopback address answers without a token. Bound anywhere else it refuses to start without
``HOLOCRON_API_TOKEN``, and every request except ``/health`` and ``/ready`` must carry
``Authorization: Bearer <token>``. The dashboard, which a browser opens, may log in once (form or ``?token=``)
and then carries an HttpOnly cookie holding a keyed digest of the token, never the token itself.

A token shorter than :data:`MIN_TOKEN_LENGTH` characters, blank, or with whitespace around it is refused at
start-up. Tokens are compared as digests in constant time, and an address that presents a wrong token
:data:`LOGIN_ATTEMPTS` times within :data:`LOGIN_WINDOW_S` seconds is answered 429 until the oldest of those
failures is that old.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from holocron.net import is_loopback

COOKIE = "holocron_session"
OPEN_PATHS = frozenset({"/health", "/ready", "/login"})
MIN_TOKEN_LENGTH = 16
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW_S = 60.0
_TRACKED_CLIENTS = 10_000


class AuthConfigError(RuntimeError):
    """The server would be reachable from other machines without a token, or the token is too weak."""


def token_problem(token: str) -> str | None:
    """Why ``token`` may not guard the server, or None when it may."""
    if not token.strip():
        return "HOLOCRON_API_TOKEN is blank (only whitespace)"
    if token != token.strip():
        return "HOLOCRON_API_TOKEN has whitespace around it (a stray newline?); no client would send that"
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"HOLOCRON_API_TOKEN is {len(token)} characters; at least {MIN_TOKEN_LENGTH} are needed "
            "(e.g. openssl rand -hex 24)"
        )
    return None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class LoginLimiter:
    """Failed logins per client address in a sliding window; thread-safe, bounded in the addresses it tracks."""

    def __init__(
        self,
        attempts: int = LOGIN_ATTEMPTS,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str) -> int | None:
        """Whole seconds ``client`` must wait before its next try, or None when it may try now."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if failures is None or len(failures) < self.attempts:
                return None
            return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if failures is None:
                failures = self._failures[client] = deque(maxlen=self.attempts)
                while len(self._failures) > _TRACKED_CLIENTS:
                    self._failures.popitem(last=False)
            failures.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def client_of(request: Request) -> str:
    """The address failed logins are counted against (the peer; a proxy in front makes it one address)."""
    return request.client.host if request.client else "unknown"


def too_many(wait: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"too many failed logins from this address: try again in {wait} s"},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


@dataclass(frozen=True)
class Auth:
    """The mode the server runs in, decided once at start-up."""

    host: str
    token: str | None
    limiter: LoginLimiter = field(default_factory=LoginLimiter, compare=False, repr=False)

    @classmethod
    def for_bind(cls, host: str, token: str | None) -> Auth:
        token = token or None
        if token is not None:
            problem = token_problem(token)
            if problem:
                raise AuthConfigError(f"refusing to serve: {problem}")
        if not is_loopback(host) and not token:
            raise AuthConfigError(
                f"refusing to serve on {host}: it is reachable beyond this machine, so HOLOCRON_API_TOKEN must be "
                "set (bind 127.0.0.1 to run without a token)"
            )
        return cls(host, token)

    @property
    def required(self) -> bool:
        return self.token is not None

    def describe(self) -> str:
        if self.required:
            return (
                f"bound to {self.host}: every request except /health and /ready needs 'Authorization: Bearer <token>'"
            )
        return f"bound to {self.host} (loopback only): no token needed"

    def session_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"holocron-dashboard-session", hashlib.sha256).hexdigest()

    def token_ok(self, candidate: str | None) -> bool:
        """Constant time whatever ``candidate`` is: digests of equal length are compared, never the strings."""
        if self.token is None:
            return True
        if not candidate:
            return False
        return hmac.compare_digest(_digest(candidate), _digest(self.token))

    def session_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(_digest(cookie), _digest(self.session_value()))

    @staticmethod
    def bearer_of(request: Request) -> str | None:
        """The bearer token the request presents, or None when it presents none."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def request_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        return self.session_ok(request) or self.token_ok(self.bearer_of(request))

    def set_session(self, response: Response, request: Request) -> None:
        response.set_cookie(
            COOKIE,
            self.session_value(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and (request.url.path == "/" or request.url.path.startswith("/static"))


def refusal(auth: Auth, request: Request) -> Response | None:
    """What to answer instead of the route (a login redirect, 401, 429), or None when the request may pass."""
    if not auth.required or request.url.path in OPEN_PATHS:
        return None
    client = client_of(request)
    query_token = request.query_params.get("token")
    if query_token is not None and request.method == "GET" and request.url.path == "/":
        wait = auth.limiter.retry_after(client)
        if wait is not None:
            return too_many(wait)
        if not auth.token_ok(query_token):
            auth.limiter.failed(client)
            return RedirectResponse("/login?" + urlencode({"error": "wrong token"}), status_code=303)
        auth.limiter.succeeded(client)
        response: Response = RedirectResponse("/", status_code=303)  # drop the token from the address bar
        auth.set_session(response, request)
        return response
    if auth.session_ok(request):
        return None
    presented = auth.bearer_of(request)
    if presented is not None:
        wait = auth.limiter.retry_after(client)
        if wait is not None:
            return too_many(wait)
        if auth.token_ok(presented):
            auth.limiter.succeeded(client)
            return None
        auth.limiter.failed(client)
    if _wants_html(request):
        return RedirectResponse("/login", status_code=303)
    return JSONResponse(
        {"detail": "authentication required: send 'Authorization: Bearer <HOLOCRON_API_TOKEN>'"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class AuthMiddleware:
    """Enforces :class:`Auth` on every path but the open ones.

    Plain ASGI rather than an ``@app.middleware("http")`` function: that form runs each request through an
    extra task and memory stream, which cost a search a millisecond on two cores.
    """

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.auth.required:
            response = refusal(self.auth, Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
