"""Health, readiness, Prometheus metrics and the overview the dashboard polls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from holocron.api.deps import State
from holocron.api.models import Health, Readiness
from holocron.observability.metrics import CONTENT_TYPE, render

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health, summary="Liveness: the process answers (no token needed).")
def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database does not answer."}},
    summary="Readiness: the database answers (no token needed).",
)
def ready(state: State) -> Any:
    try:
        engine = state.holocron.ping()
    except Exception as exc:
        body = Readiness(ready=False, database=state.holocron.db.dialect, detail=f"{type(exc).__name__}: {exc}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Readiness(ready=True, database=engine)


@router.get("/metrics", summary="Prometheus metrics in the text exposition format.", response_class=Response)
def metrics(state: State) -> Response:
    return Response(render(state.registry), media_type=CONTENT_TYPE)


@router.get("/api/status", summary="The overview: queue, runs, errors, spaces, sources and throughput.")
def status(state: State) -> dict[str, Any]:
    out: dict[str, Any] = state.paths.public(state.holocron.overview())
    return out
