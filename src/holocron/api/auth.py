"""Who may talk to the server: anyone on loopback, everyone else only with the bearer token.

A server bound to a loopback address answers without a token. Bound anywhere else it refuses to start without
``HOLOCRON_API_TOKEN``, and every request except ``/health`` must carry ``Authorization: Bearer <token>``. The
dashboard, which a browser opens, may log in once (form or ``?token=``) and then carries an HttpOnly cookie
holding a keyed digest of the token, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from holocron.net import is_loopback

COOKIE = "holocron_session"
OPEN_PATHS = frozenset({"/health", "/login"})


class AuthConfigError(RuntimeError):
    """The server would be reachable from other machines without a token."""


@dataclass(frozen=True)
class Auth:
    """The mode the server runs in, decided once at start-up."""

    host: str
    token: str | None

    @classmethod
    def for_bind(cls, host: str, token: str | None) -> Auth:
        token = token or None
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
            return f"bound to {self.host}: every request except /health needs 'Authorization: Bearer <token>'"
        return f"bound to {self.host} (loopback only): no token needed"

    def session_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"holocron-dashboard-session", hashlib.sha256).hexdigest()

    def token_ok(self, candidate: str | None) -> bool:
        if self.token is None:
            return True
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def request_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token_ok(value.strip()):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session_value().encode())

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


def middleware(auth: Auth) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """An HTTP middleware enforcing :class:`Auth` on every path but the open ones."""

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not auth.required or request.url.path in OPEN_PATHS:
            return await call_next(request)
        query_token = request.query_params.get("token")
        if query_token is not None and request.method == "GET" and request.url.path == "/":
            if not auth.token_ok(query_token):
                return RedirectResponse("/login?" + urlencode({"error": "wrong token"}), status_code=303)
            response: Response = RedirectResponse("/", status_code=303)  # drop the token from the address bar
            auth.set_session(response, request)
            return response
        if auth.request_ok(request):
            return await call_next(request)
        if _wants_html(request):
            return RedirectResponse("/login", status_code=303)
        return JSONResponse(
            {"detail": "authentication required: send 'Authorization: Bearer <HOLOCRON_API_TOKEN>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    return check
