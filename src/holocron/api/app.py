"""The HTTP server: the JSON API, ``/metrics`` and the dashboard, in one FastAPI application.

``create_app(settings)`` opens the library itself (and closes it at shutdown); ``create_app(holocron)`` serves an
already opened one (tests, embedding in another process). The bind host decides the auth mode (see auth.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from holocron._version import __version__
from holocron.api.auth import Auth, middleware
from holocron.api.deps import ServerState, bearer
from holocron.api.routes import catalog, dashboard, jobs, runs, search, system
from holocron.config import Settings
from holocron.service import Holocron

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def create_app(target: Settings | Holocron, *, host: str | None = None) -> FastAPI:
    """The application for ``target``; ``host`` (default ``settings.api_host``) is where it will be bound.

    Raises :class:`holocron.api.auth.AuthConfigError` when bound beyond loopback without a token.
    """
    owns = isinstance(target, Settings)
    settings = target if isinstance(target, Settings) else target.settings
    token = settings.api_token.get_secret_value() if settings.api_token else None
    auth = Auth.for_bind(host or settings.api_host, token)
    holo = Holocron(settings) if isinstance(target, Settings) else target
    state = ServerState(holocron=holo, auth=auth, registry=holo.metrics_registry(), owns_holocron=owns)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if state.owns_holocron:
            holo.close()

    app = FastAPI(
        title="Holocron",
        summary="Search, evidence, sources, spaces, jobs and runs; health and Prometheus metrics.",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(bearer)],
    )
    app.state.holocron_server = state
    app.middleware("http")(middleware(auth))
    app.middleware("http")(_request_log)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for module in (system, search, catalog, jobs, runs, dashboard):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _request_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """One debug line per request (path without its query string: a ``?token=`` never reaches a log)."""
    started = time.perf_counter()
    response = await call_next(request)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s %s -> %d in %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
    return response


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable line per problem, plus the structured list."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return JSONResponse(
        {"detail": "; ".join(problems), "errors": [{k: v for k, v in e.items() if k != "ctx"} for e in exc.errors()]},
        status_code=422,
    )
