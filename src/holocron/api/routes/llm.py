"""The LLM runtime: interrogations, the ``llm.job`` queue, runs with their artifacts and lineage, classified pages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from holocron.api.deps import JobId, PageParams, State, changed_or_refused
from holocron.api.models import EnqueueResponse, JobIds, LlmEnqueueRequest, LlmEnqueueResponse, Page
from holocron.jobs.models import JobStatus

router = APIRouter(prefix="/api/llm", tags=["llm"])

RunId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$", description="The run's id.")]
Interrogation = Annotated[str | None, Query(max_length=64, description="Only this interrogation's.")]


@router.get("/interrogations", summary="The registered interrogations, with their output schemas.")
def interrogations(state: State) -> list[dict[str, Any]]:
    return [i.to_json() for i in state.holocron.interrogations.all()]


@router.get("/jobs", response_model=Page[dict[str, Any]], summary="LLM jobs, newest first.")
def list_jobs(
    state: State,
    page: PageParams,
    status: Annotated[list[JobStatus] | None, Query(description="Only these statuses (repeatable).")] = None,
    interrogation: Annotated[list[str] | None, Query(description="Only these interrogations (repeatable).")] = None,
) -> Page[dict[str, Any]]:
    queue = state.holocron.llm_jobs
    items = queue.list(statuses=status, types=interrogation, limit=page.limit, offset=page.offset)
    total = queue.count(statuses=status, types=interrogation)
    return Page[dict[str, Any]].of([state.paths.public(job.to_json()) for job in items], total, page.limit, page.offset)


@router.get("/jobs/{job_id}", summary="One LLM job.", responses={404: {"description": "No such job."}})
def get_job(job_id: JobId, state: State) -> dict[str, Any]:
    job = state.holocron.llm_jobs.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no llm job {job_id}")
    out: dict[str, Any] = state.paths.public(job.to_json())
    return out


@router.post(
    "/jobs",
    status_code=201,
    response_model=LlmEnqueueResponse,
    summary="Ask an interrogation of sources or queries; all validated before any is stored.",
)
def enqueue(body: LlmEnqueueRequest, state: State) -> LlmEnqueueResponse:
    try:
        done = state.holocron.llm_enqueue(
            body.interrogation,
            source_ids=body.source_ids,
            all_sources=body.all_sources,
            queries=body.queries,
            params=body.params,
            priority=body.priority,
        )
    except ValueError as exc:  # unknown interrogation, bad parameters, unknown source: nothing was stored
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return LlmEnqueueResponse(
        jobs=[EnqueueResponse(job=state.paths.public(e.job.to_json()), created=e.created) for e in done]
    )


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobIds,
    summary="Put a DEADLETTER, FAILED or CANCELLED LLM job back to NEW with fresh attempts.",
    responses={404: {"description": "No such job."}, 409: {"description": "The job is in another state."}},
)
def retry(job_id: JobId, state: State) -> JobIds:
    queue = state.holocron.llm_jobs
    return changed_or_refused(queue, job_id, queue.retry([job_id]), "retried", what="llm job")


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobIds,
    summary="Cancel an unfinished LLM job.",
    responses={404: {"description": "No such job."}, 409: {"description": "The job has finished already."}},
)
def cancel(job_id: JobId, state: State) -> JobIds:
    queue = state.holocron.llm_jobs
    return changed_or_refused(queue, job_id, queue.cancel([job_id]), "cancelled", what="llm job")


@router.get("/stats", summary="The LLM queue by status and interrogation, and the runs by status.")
def stats(state: State) -> dict[str, Any]:
    queue = state.holocron.llm_jobs.stats()
    return {"queue": queue.to_json(), "runs": state.holocron.llm_counts()}


@router.post("/refresh", response_model=LlmEnqueueResponse, summary="Ask again the answers whose evidence changed.")
def refresh(state: State, interrogation: Interrogation = None) -> LlmEnqueueResponse:
    done = state.holocron.llm_refresh(interrogation=interrogation)
    return LlmEnqueueResponse(
        jobs=[EnqueueResponse(job=state.paths.public(e.job.to_json()), created=e.created) for e in done]
    )


@router.get("/runs", response_model=Page[dict[str, Any]], summary="LLM runs, newest first.")
def runs(
    state: State,
    page: PageParams,
    interrogation: Interrogation = None,
    status: Annotated[str | None, Query(pattern="^(RUNNING|SUCCEEDED|FAILED)$")] = None,
    stale: Annotated[bool | None, Query(description="Only answers whose evidence changed (or did not).")] = None,
    job_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Page[dict[str, Any]]:
    listing = state.holocron.llm_runs(
        job_id=job_id, interrogation=interrogation, status=status, stale=stale, limit=page.limit, offset=page.offset
    )
    return Page[dict[str, Any]].of(
        [state.paths.public(row) for row in listing.items], listing.total, page.limit, page.offset
    )


@router.get(
    "/runs/{run_id}",
    summary="One run: its model, metrics, artifacts, evidence lineage and parsed output.",
    responses={404: {"description": "No such run."}},
)
def run(run_id: RunId, state: State) -> dict[str, Any]:
    row = state.holocron.llm_run(run_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no llm run {run_id!r}")
    out: dict[str, Any] = state.paths.public(row)
    return out


@router.get(
    "/runs/{run_id}/artifacts",
    summary="A run's artifacts with their content.",
    responses={404: {"description": "No such run."}},
)
def artifacts(run_id: RunId, state: State) -> list[dict[str, Any]]:
    if state.holocron.llm_run(run_id) is None:
        raise HTTPException(status_code=404, detail=f"no llm run {run_id!r}")
    out: list[dict[str, Any]] = state.paths.public(state.holocron.llm_artifacts(run_id))
    return out


@router.get("/pages", summary="sem.source_page: the classified pages, each with whether its answer is stale.")
def pages(state: State, limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = state.paths.public(state.holocron.source_pages(limit=limit))
    return out
