"""Runs: every execution that wrote chunks or embeddings, with its metrics and artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from holocron.api.deps import PageParams, State
from holocron.api.models import MAX_ID, Page, RunOut

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("", response_model=Page[RunOut], summary="Runs, newest first.")
def runs(
    state: State,
    page: PageParams,
    job_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this job's runs.")] = None,
) -> Page[RunOut]:
    listing = state.holocron.runs(job_id=job_id, limit=page.limit, offset=page.offset)
    items = [RunOut.from_row(row, paths=state.paths) for row in listing.items]
    return Page[RunOut].of(items, listing.total, page.limit, page.offset)


@router.get(
    "/{run_id}",
    response_model=RunOut,
    summary="One run with its artifacts.",
    responses={404: {"description": "No such run."}},
)
def run(run_id: str, state: State) -> RunOut:
    row = state.holocron.run(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id!r}")
    return RunOut.from_row(row, row["artifacts"], state.paths)
