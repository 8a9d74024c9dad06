"""Runs: every execution that wrote chunks or embeddings, with its metrics and artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from holocron.api.deps import PageParams, State
from holocron.api.models import Page, RunOut
from holocron.store.runs import get_run, list_runs, run_artifacts

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("", response_model=Page[RunOut], summary="Runs, newest first.")
def runs(
    state: State, page: PageParams, job_id: Annotated[int | None, Query(description="Only this job's runs.")] = None
) -> Page[RunOut]:
    with state.holocron.db.read() as tx:
        r = tx.t.run
        count = select(func.count()).select_from(r)
        if job_id is not None:
            count = count.where(r.c.job_id == job_id)
        total = int(tx.execute(count).scalar_one())
        rows = list_runs(tx, limit=page.limit, offset=page.offset, job_id=job_id)
    return Page[RunOut].of([RunOut.from_row(row) for row in rows], total, page.limit, page.offset)


@router.get(
    "/{run_id}",
    response_model=RunOut,
    summary="One run with its artifacts.",
    responses={404: {"description": "No such run."}},
)
def run(run_id: str, state: State) -> RunOut:
    with state.holocron.db.read() as tx:
        row = get_run(tx, run_id)
        artifacts = run_artifacts(tx, run_id) if row else []
    if row is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id!r}")
    return RunOut.from_row(row, artifacts)
