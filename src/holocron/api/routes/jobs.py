"""The job queue: list, inspect, enqueue, retry and cancel, through the queue's own operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from holocron.api.deps import JobId, PageParams, State, changed_or_refused
from holocron.api.models import EnqueueRequest, EnqueueResponse, JobIds, Page
from holocron.jobs.models import JobStatus, JobType
from holocron.observability.metrics import record_job_retry

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("", response_model=Page[dict[str, Any]], summary="Jobs, newest first.")
def list_jobs(
    state: State,
    page: PageParams,
    status: Annotated[list[JobStatus] | None, Query(description="Only these statuses (repeatable).")] = None,
    job_type: Annotated[list[JobType] | None, Query(description="Only these types (repeatable).")] = None,
) -> Page[dict[str, Any]]:
    items = state.queue.list(statuses=status, types=job_type, limit=page.limit, offset=page.offset)
    total = state.queue.count(statuses=status, types=job_type)
    return Page[dict[str, Any]].of([state.paths.public(job.to_json()) for job in items], total, page.limit, page.offset)


@router.get("/{job_id}", summary="One job.", responses={404: {"description": "No such job."}})
def get_job(job_id: JobId, state: State) -> dict[str, Any]:
    job = state.queue.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    out: dict[str, Any] = state.paths.public(job.to_json())
    return out


@router.post("", status_code=201, response_model=EnqueueResponse, summary="Enqueue one job (validated payload).")
def enqueue(body: EnqueueRequest, state: State) -> EnqueueResponse:
    try:
        done = state.holocron.enqueue_job(
            body.job_type,
            body.input,
            priority=body.priority,
            dedupe_key=body.dedupe_key,
            max_attempts=body.max_attempts,
        )
    except ValueError as exc:  # an unknown type or a payload its schema rejects; nothing was stored
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return EnqueueResponse(job=state.paths.public(done.job.to_json()), created=done.created)


def _one(job_id: int, state: State, changed: list[int], verb: str) -> JobIds:
    return changed_or_refused(state.queue, job_id, changed, verb)


@router.post(
    "/{job_id}/retry",
    response_model=JobIds,
    summary="Put a DEADLETTER, FAILED or CANCELLED job back to NEW with fresh attempts.",
    responses={404: {"description": "No such job."}, 409: {"description": "The job is in another state."}},
)
def retry(job_id: JobId, state: State) -> JobIds:
    job = state.queue.get(job_id)
    changed = state.queue.retry([job_id])
    if changed and job is not None:
        record_job_retry(job.job_type.value)
    return _one(job_id, state, changed, "retried")


@router.post(
    "/{job_id}/cancel",
    response_model=JobIds,
    summary="Cancel an unfinished job.",
    responses={404: {"description": "No such job."}, 409: {"description": "The job has finished already."}},
)
def cancel(job_id: JobId, state: State) -> JobIds:
    return _one(job_id, state, state.queue.cancel([job_id]), "cancelled")
