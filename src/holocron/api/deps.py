"""Shared dependencies of the routers: the opened library, the queue, pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry

from holocron.api.auth import Auth
from holocron.api.models import DEFAULT_LIMIT, MAX_ID, MAX_LIMIT, MAX_OFFSET, JobIds, LocalPaths
from holocron.jobs.queue import JobQueue, Queue
from holocron.service import Holocron

# Declared so that OpenAPI shows the bearer scheme; the middleware in auth.py does the enforcing.
bearer = HTTPBearer(auto_error=False, description="HOLOCRON_API_TOKEN; required when bound beyond loopback.")


@dataclass
class ServerState:
    """What every request shares: one library per process (searches run side by side; a provider that cannot
    embed two batches at once serialises its own model calls)."""

    holocron: Holocron
    auth: Auth
    registry: CollectorRegistry
    paths: LocalPaths
    owns_holocron: bool = False

    @property
    def queue(self) -> JobQueue:
        return self.holocron.jobs


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.holocron_server
    return state


State = Annotated[ServerState, Depends(server_state)]


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
) -> Paging:
    return Paging(limit, offset)


PageParams = Annotated[Paging, Depends(paging)]

JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.")]


def changed_or_refused(queue: Queue[Any], job_id: int, changed: list[int], verb: str, *, what: str = "job") -> JobIds:
    """The answer to retrying or cancelling one job of any queue: the ids changed, else why not (404, 409)."""
    if changed:
        return JobIds(job_ids=changed)
    job = queue.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no {what} {job_id}")
    raise HTTPException(status_code=409, detail=f"{what} {job_id} is {job.status.value} and cannot be {verb}")
