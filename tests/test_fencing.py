"""Fencing tokens: two processes started with the same ``--worker-id`` cannot act on each other's claims.

Every claim writes a fresh token and hands it to the claimer; heartbeat, succeed, fail and release match on the
job and that token, so a claim whose lease expired (and whose job was claimed again, under the same worker id)
reports its lease lost exactly as any lost lease is reported, and writes nothing. On both engines; the queue
clients are separate objects as they would be in separate processes, and the worker-level test runs a real
worker whose lease runs out while its handler is still busy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from holocron.config import Settings
from holocron.jobs import Job, JobContext, JobQueue, JobStatus, JobType, Worker, WorkerOptions
from holocron.service import Holocron
from holocron.store.database import Database
from holocron.store.types import db_now
from test_queue import make_space, retrieve

SAME_ID = "host:1234:abcd"


@pytest.fixture()
def space_id(db: Database) -> int:
    return make_space(db)


def expire(db: Database, job_id: int) -> None:
    """The job's lease ran out an hour ago, by the database's clock (its worker stopped heartbeating)."""
    with db.write() as tx:
        j = tx.t.job
        tx.execute(update(j).where(j.c.job_id == job_id).values(lease_expires_utc=db_now(-3600.0)))


def row(db: Database, job_id: int) -> dict[str, Any]:
    with db.read() as tx:
        return dict(tx.execute(select(tx.t.job).where(tx.t.job.c.job_id == job_id)).one()._mapping)


def test_a_stale_claim_under_the_same_worker_id_touches_nothing(db: Database, space_id: int) -> None:
    first_process, second_process = JobQueue(db, reclaim_every_s=0), JobQueue(db, reclaim_every_s=0)
    enqueued = first_process.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id)).job
    stale = first_process.claim(SAME_ID, lease_seconds=30)
    assert stale is not None and stale.job_id == enqueued.job_id
    expire(db, stale.job_id)
    current = second_process.claim(SAME_ID, lease_seconds=30)
    assert current is not None and current.job_id == stale.job_id and current.locked_by == SAME_ID
    assert current.claim_token is not None and current.claim_token != stale.claim_token
    assert current.attempt_count == 2
    before = row(db, current.job_id)

    # The first process wakes up: each of its owner's writes reports the lease lost, as any lost lease does.
    assert first_process.heartbeat(stale, lease_seconds=30, progress={"late": True}) is False
    assert first_process.heartbeat_many([], lease_seconds=30) == set()
    assert first_process.succeed(stale, {"from": "stale"}) is False
    assert first_process.fail(stale, "stale failure") is None
    assert first_process.fail(stale, "stale failure", permanent=True) is None
    assert first_process.release(stale) is False
    assert row(db, current.job_id) == before  # not one column moved

    # The current claim still owns the job, and its writes land.
    assert second_process.heartbeat(current, lease_seconds=30, progress={"step": 1})
    assert second_process.succeed(current, {"from": "current"})
    final = second_process.get(current.job_id)
    assert final is not None and final.status is JobStatus.SUCCEEDED and final.result == {"from": "current"}


def test_a_job_read_without_claiming_it_owns_nothing(db: Database, space_id: int) -> None:
    queue = JobQueue(db)
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id))
    claimed = queue.claim(SAME_ID, lease_seconds=30)
    assert claimed is not None
    read = queue.get(claimed.job_id)
    assert read is not None and read.claim_token is None and read.locked_by == SAME_ID
    with pytest.raises(ValueError, match="claim token"):
        queue.succeed(read)
    assert "claim_token" not in claimed.to_json()  # never shown: whoever holds it acts as the owner
    assert "claim_token" not in repr(claimed)


@pytest.fixture()
def holo(db_url: str, db: Database, tmp_path: Path) -> Iterator[Holocron]:
    with Holocron(Settings(database_url=db_url, home=tmp_path / "home")) as instance:
        yield instance


def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_new_claim_of_its_own_id(
    holo: Holocron, space_id: int
) -> None:
    """A worker's handler is still busy when its lease runs out and another process with the same worker id
    claims the job: the first one's result is discarded, the second one's stands."""
    inside, finish = threading.Event(), threading.Event()

    def slow(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
        inside.set()
        assert finish.wait(60)
        return {"from": "the first process"}  # no checkpoint after the wait: it goes straight to succeed

    queue = JobQueue(holo.db, reclaim_every_s=0)
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id)).job
    # No heartbeat within the test: the lease can only run out.
    options = WorkerOptions(worker_id=SAME_ID, spaces=[space_id], heartbeat_seconds=3600, drain=True)
    worker = Worker(holo, options, handlers={JobType.RETRIEVE_TEST: slow}, queue=JobQueue(holo.db))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert inside.wait(30)
        expire(holo.db, job.job_id)
        taken: Job | None = queue.claim(SAME_ID, lease_seconds=30)
        assert taken is not None and taken.job_id == job.job_id
    finally:
        finish.set()
        thread.join(30)
    assert not thread.is_alive()
    assert worker.report.lost == 1 and worker.report.succeeded == 0
    current = queue.get(job.job_id)
    assert current is not None and current.status is JobStatus.RUNNING and current.result is None
    assert queue.succeed(taken, {"from": "the second process"})
    final = queue.get(job.job_id)
    assert final is not None and final.result == {"from": "the second process"}
