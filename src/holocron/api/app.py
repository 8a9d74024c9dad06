"""The HTTP server: the JSON API, ``/metrics`` and the dashboard, in one FastAPI application.

``create_app(settings)`` opens the library itself (and closes it at shutdown); ``create_app(holocron)`` serves an
already opened one (tests, embedding in another process). The bind host decides the auth mode (see auth.py) and
which Host names are answered (see guard.py, which also sets the security headers and the body size limit).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from holocron._version import __version__
from holocron.api.auth import Auth, AuthConfigError, AuthMiddleware
from holocron.api.deps import ServerState, bearer
from holocron.api.guard import Guard, HostRule
from holocron.api.models import LocalPaths
from holocron.api.routes import catalog, dashboard, jobs, llm, runs, search, system
from holocron.config import Settings
from holocron.retrieval.vector_index import IndexFolderError
from holocron.service import Holocron

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def create_app(target: Settings | Holocron, *, host: str | None = None) -> FastAPI:
    """The application for ``target``; ``host`` (default ``settings.api_host``) is where it will be bound.

    Raises :class:`holocron.api.auth.AuthConfigError` when bound beyond loopback without a token, when the token
    is too weak, or when ``api_allowed_hosts`` holds something that is not a host name.
    """
    owns = isinstance(target, Settings)
    settings = target if isinstance(target, Settings) else target.settings
    bind = host or settings.api_host
    token = settings.api_token.get_secret_value() if settings.api_token else None
    auth = Auth.for_bind(bind, token)
    try:
        hosts = HostRule.of(bind, settings.api_allowed_hosts)
    except ValueError as exc:
        raise AuthConfigError(f"refusing to serve: {exc}") from None
    holo = Holocron(settings) if isinstance(target, Settings) else target
    state = ServerState(
        holocron=holo,
        auth=auth,
        registry=holo.metrics_registry(),
        paths=LocalPaths.of(settings.home, settings.resolved_lake_dir),
        owns_holocron=owns,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if state.owns_holocron:
            holo.close()

    app = GuardedApp(
        hosts=hosts,
        max_body_bytes=settings.api_max_body_bytes,
        title="Holocron",
        summary="Search, evidence, sources, spaces, jobs and runs; health and Prometheus metrics.",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(bearer)],
    )
    app.state.holocron_server = state
    app.add_middleware(AuthMiddleware, auth=auth)
    app.add_middleware(RequestLog)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(IndexFolderError, _index_folder_error)  # type: ignore[arg-type]
    for module in (system, search, catalog, jobs, runs, llm, dashboard):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class GuardedApp(FastAPI):
    """FastAPI with :class:`holocron.api.guard.Guard` outside its whole middleware stack, error pages included."""

    def __init__(self, *, hosts: HostRule, max_body_bytes: int, **options: Any) -> None:
        self.hosts = hosts
        self.max_body_bytes = max_body_bytes
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        return Guard(super().build_middleware_stack(), hosts=self.hosts, max_body_bytes=self.max_body_bytes)


class RequestLog:
    """One debug line per request (path without its query string: a ``?token=`` never reaches a log).

    Plain ASGI, like :class:`holocron.api.auth.AuthMiddleware`, and out of the way when debug logging is off.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.DEBUG):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - started) * 1000
            log.debug("%s %s -> %d in %.1f ms", scope["method"], scope["path"], status, ms)


MAX_ECHO = 200
"""The most characters of a rejected input echoed back in ``errors``."""


def _echo(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can carry it: bytes decoded (invalid UTF-8 replaced), long text cut, depth bounded."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: MAX_ECHO * 4]).decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.encode("utf-8", "replace").decode("utf-8")
        return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "…"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**30 else _echo(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN nor infinity
    if depth >= 4:
        return "…"
    if isinstance(value, dict):
        return {_echo(str(k)): _echo(v, depth + 1) for k, v in list(value.items())[:20]}
    if isinstance(value, list | tuple):
        return [_echo(v, depth + 1) for v in value[:20]]
    return _echo(str(value), depth)


async def _index_folder_error(_request: Request, exc: IndexFolderError) -> JSONResponse:
    """The store is fine but its vector index folder cannot be used: the operator's problem, said plainly (the
    folder's name, not its absolute path, which this API never shows)."""
    log.error("%s", exc)
    return JSONResponse(
        status_code=503, content={"detail": f"the vector index folder '{exc.path.name}' cannot be used: {exc.problem}"}
    )


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable line per problem, plus the structured list (the inputs shortened, never bytes)."""
    problems = []
    errors = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {_echo(str(error.get('msg', 'invalid')))}")
        errors.append({k: _echo(v) for k, v in error.items() if k != "ctx"})
    return JSONResponse({"detail": "; ".join(problems), "errors": errors}, status_code=422)
