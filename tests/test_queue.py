"""The queue's contract on both engines: enqueue and dedupe, validation, claim order and atomicity, leases,
lost-lease protection, the database's clock, backoff, dead letters, retry, cancel; and the worker loop with
no-op handlers.

The queue's clock is the database's, which a test cannot move: where behaviour depends on time passing, the
stored job times are moved into the past instead (:func:`elapse`), so nothing here waits for a lease to expire.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

import holocron.store.types
from holocron.backoff import backoff_delay
from holocron.config import Settings
from holocron.embedding.base import ModelIdentity
from holocron.jobs import (
    InvalidPayloadError,
    Job,
    JobContext,
    JobInterruptedError,
    JobQueue,
    JobStatus,
    JobType,
    NewJob,
    UnknownJobTypeError,
    Worker,
    WorkerOptions,
)
from holocron.jobs.queue import Beat
from holocron.observability.logs import configure_logging
from holocron.service import Holocron
from holocron.store.database import Database
from holocron.store.runs import start_run
from holocron.store.spaces import get_or_create_space
from holocron.store.types import db_now, utcnow

CHUNK_ID = "a" * 64


JOB_TIMES = ("available_utc", "lease_expires_utc", "locked_utc", "created_utc", "updated_utc", "completed_utc")


def elapse(db: Database, seconds: float) -> None:
    """Let ``seconds`` pass for the queue: every stored job time moves that far into the past.

    The queue compares stored times with the database's clock only, so this is time passing as far as leases,
    backoff and lag are concerned.
    """
    delta = timedelta(seconds=seconds)
    with db.write() as tx:
        j = tx.t.job
        for row in tx.execute(select(j.c.job_id, *(j.c[name] for name in JOB_TIMES))).all():
            moved = {name: row._mapping[name] - delta for name in JOB_TIMES if row._mapping[name] is not None}
            tx.execute(update(j).where(j.c.job_id == row.job_id).values(**moved))


def db_time(db: Database) -> datetime:
    with db.read() as tx:
        return tx.now()


def shift_host_clock(monkeypatch: pytest.MonkeyPatch, offset: timedelta) -> None:
    """This host's clock, as Python sees it, off by ``offset``: every ``utcnow()`` (however it was bound)."""

    class Shifted(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + offset

    monkeypatch.setattr(holocron.store.types, "datetime", Shifted)
    assert abs(utcnow() - datetime.now(utcnow().tzinfo) - offset) < timedelta(seconds=5)


def make_space(db: Database, tag: str = "test") -> int:
    identity = ModelIdentity(
        provider="fake",
        model_name="fake-model",
        model_tag=tag,
        model_digest=f"sha256:{tag}",
        dimensions=4,
        max_input_tokens=128,
        normalized=True,
    )
    space, _ = get_or_create_space(db, identity)
    return space.embedding_space_id


def retrieve(space_id: int, query: str = "q") -> dict[str, Any]:
    return {"space_id": space_id, "queries": [query]}


@pytest.fixture()
def queue(db: Database) -> JobQueue:
    return JobQueue(db, rng=random.Random(7), reclaim_every_s=0)


@pytest.fixture()
def space_id(db: Database) -> int:
    return make_space(db)


def job_count(db: Database) -> int:
    with db.read() as tx:
        return int(tx.execute(select(func.count()).select_from(tx.t.job)).scalar_one())


# --- enqueue, dedupe, validation -------------------------------------------------------------------------------


def test_enqueue_stores_a_validated_payload_with_type_defaults(queue: JobQueue, space_id: int) -> None:
    chunk = queue.enqueue(JobType.CHUNK_SOURCE, {"space_id": space_id, "source_ids": ["files:a.md"]})
    embed = queue.enqueue("embed_chunks", {"space_id": space_id, "chunk_ids": [CHUNK_ID]})
    assert chunk.created and chunk.job.status is JobStatus.NEW and chunk.job.attempt_count == 0
    assert chunk.job.input == {
        "space_id": space_id,
        "source_ids": ["files:a.md"],
        "embed": True,
        "embed_batch_size": None,
        "force": False,
        "chunk_policy": None,
    }
    assert chunk.job.embedding_space_id == space_id and chunk.job.max_attempts == 5
    assert embed.job.priority == 10 > chunk.job.priority == 0  # embedding first: finish started work


def test_dedupe_key_returns_the_unfinished_job_and_is_freed_by_success(queue: JobQueue, space_id: int) -> None:
    first = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="smoke")
    again = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, "other"), dedupe_key="smoke")
    assert first.created and not again.created and again.job.job_id == first.job.job_id
    assert again.job.input["queries"] == ["q"]  # the existing job, untouched

    job = queue.claim("w1", lease_seconds=30)
    assert job is not None and job.job_id == first.job.job_id
    during = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="smoke")
    assert not during.created and during.job.status is JobStatus.RUNNING

    assert queue.succeed(job, {"ok": True})
    after = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="smoke")
    assert after.created and after.job.job_id != first.job.job_id


def test_dead_lettered_job_keeps_its_dedupe_key(queue: JobQueue, space_id: int) -> None:
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="k", max_attempts=1)
    job = queue.claim("w", lease_seconds=30)
    assert job is not None
    queue.fail(job, "boom")
    again = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="k")
    assert not again.created and again.job.status is JobStatus.DEADLETTER


def test_enqueue_many_dedupes_within_one_batch(queue: JobQueue, space_id: int) -> None:
    results = queue.enqueue_many(
        [NewJob(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="same") for _ in range(3)]
    )
    assert [r.created for r in results] == [True, False, False]
    assert len({r.job.job_id for r in results}) == 1


@pytest.mark.parametrize(
    ("job_type", "payload", "message"),
    [
        ("CHUNK_SOURCE", {"space_id": 1}, "source_ids: Field required"),
        ("CHUNK_SOURCE", {"space_id": 1, "source_ids": []}, "source_ids: List should have at least 1 item"),
        ("EMBED_CHUNKS", {"space_id": 1, "chunk_ids": ["not-a-chunk-id"]}, "chunk_ids.0: String should match"),
        ("EMBED_CHUNKS", {"space_id": "one", "chunk_ids": [CHUNK_ID]}, "space_id: Input should be a valid integer"),
        ("RETRIEVE_TEST", {"space_id": 1, "queries": ["q"], "colour": "red"}, "colour: Extra inputs"),
        ("RETRIEVE_TEST", {"space_id": 1, "queries": ["q"], "k": 0}, "k: Input should be greater than or equal"),
        ("REEMBED_SPACE", {"source_space_id": 1, "target_space_id": 1}, "must differ"),
        ("DRIFT_TEST", {"space_id": 1, "min_cosine": 2}, "min_cosine: Input should be less than or equal"),
    ],
)
def test_bad_payloads_are_rejected_with_the_field_named_and_nothing_stored(
    queue: JobQueue, db: Database, job_type: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidPayloadError, match=f"{job_type} payload rejected") as caught:
        queue.enqueue(job_type, payload)
    assert message in str(caught.value)
    assert job_count(db) == 0


def test_unknown_type_missing_space_and_mixed_batches_store_nothing(
    queue: JobQueue, db: Database, space_id: int
) -> None:
    with pytest.raises(UnknownJobTypeError, match="NO_OP"):
        queue.enqueue("NO_OP", {})
    with pytest.raises(InvalidPayloadError, match="no embedding space with id 999"):
        queue.enqueue(JobType.RETRIEVE_TEST, retrieve(999))
    with pytest.raises(InvalidPayloadError):
        queue.enqueue_many(
            [
                NewJob(JobType.RETRIEVE_TEST, retrieve(space_id)),
                NewJob(JobType.RETRIEVE_TEST, {"space_id": space_id, "queries": []}),
            ]
        )
    assert job_count(db) == 0


# --- claim -----------------------------------------------------------------------------------------------------


def test_claim_takes_highest_priority_then_oldest_and_sets_the_lease(
    queue: JobQueue, db: Database, space_id: int
) -> None:
    old_low = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), priority=0).job
    new_high = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), priority=5).job
    newer_low = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), priority=0).job
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), available_utc=utcnow() + timedelta(hours=1))

    before = db_time(db)
    first = queue.claim("w1", lease_seconds=30)
    after = db_time(db)
    assert first is not None and first.job_id == new_high.job_id
    assert first.status is JobStatus.RUNNING and first.locked_by == "w1" and first.attempt_count == 1
    assert first.claim_token is not None and len(first.claim_token) == 36
    assert first.locked_utc is not None and before <= first.locked_utc <= after  # the database's clock
    assert first.lease_expires_utc == first.locked_utc + timedelta(seconds=30)
    ids = [queue.claim("w1", lease_seconds=30) for _ in range(3)]
    assert [j.job_id if j else None for j in ids] == [old_low.job_id, newer_low.job_id, None]
    tokens = {j.claim_token for j in ids if j} | {first.claim_token}
    assert len(tokens) == 3  # a fresh token per claim
    assert queue.get(first.job_id).claim_token is None  # type: ignore[union-attr]  # handed to the claimer only


def test_claim_filters_by_type_and_space(queue: JobQueue, db: Database, space_id: int) -> None:
    other_space = make_space(db, "other")
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(other_space))
    embed = queue.enqueue(JobType.EMBED_CHUNKS, {"space_id": space_id, "chunk_ids": [CHUNK_ID]}).job
    assert queue.claim("w", lease_seconds=5, types=[JobType.RETRIEVE_TEST], spaces=[space_id]) is None
    claimed = queue.claim("w", lease_seconds=5, spaces=[space_id])
    assert claimed is not None and claimed.job_id == embed.job_id
    assert queue.peek(spaces=[other_space])[0].job_type is JobType.RETRIEVE_TEST


@pytest.mark.parametrize("batch", [1, 7])
def test_concurrent_claims_never_hand_out_a_job_twice(db: Database, space_id: int, batch: int) -> None:
    queue = JobQueue(db)
    queue.enqueue_many([NewJob(JobType.RETRIEVE_TEST, retrieve(space_id, f"q{i}")) for i in range(60)])
    claimed: dict[str, list[int]] = {f"w{i}": [] for i in range(4)}

    def claim_all(worker_id: str) -> None:
        while jobs := queue.claim_many(worker_id, batch, lease_seconds=60):
            claimed[worker_id].extend(job.job_id for job in jobs)

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [job_id for ids in claimed.values() for job_id in ids]
    assert len(everything) == len(set(everything)) == 60


def test_claim_many_takes_a_batch_in_claim_order_under_one_token(queue: JobQueue, space_id: int) -> None:
    low = [queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, f"low{i}")).job for i in range(3)]
    high = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, "high"), priority=5).job
    batch = queue.claim_many("w", 3, lease_seconds=30)
    assert [j.job_id for j in batch] == [high.job_id, low[0].job_id, low[1].job_id]
    assert len({j.claim_token for j in batch}) == 1 and batch[0].claim_token
    assert all(j.status is JobStatus.RUNNING and j.attempt_count == 1 for j in batch)
    assert [j.job_id for j in queue.claim_many("w", 10, lease_seconds=30)] == [low[2].job_id]
    assert queue.claim_many("w", 10, lease_seconds=30) == []
    # The shared token fences each job on its own: one job finished, the others still owned.
    assert queue.succeed(batch[1]) and queue.get(batch[0].job_id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="at least one"):
        queue.claim_many("w", 0, lease_seconds=30)


# --- leases ----------------------------------------------------------------------------------------------------


def test_heartbeat_extends_the_lease_and_publishes_progress(queue: JobQueue, db: Database, space_id: int) -> None:
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id))
    job = queue.claim("w1", lease_seconds=10)
    assert job is not None
    elapse(db, 8)
    assert queue.heartbeat(job, lease_seconds=10, progress={"done": 3})
    elapse(db, 8)  # 16 s after the claim, but only 8 after the heartbeat: still ours
    assert queue.claim("w2", lease_seconds=10) is None
    current = queue.get(job.job_id)
    assert current is not None and current.lease_expires_utc is not None
    assert current.lease_expires_utc - current.updated_utc == timedelta(seconds=10)
    assert timedelta(seconds=1) < current.lease_expires_utc - db_time(db) <= timedelta(seconds=2)
    assert current.result == {"progress": {"done": 3}}
    assert not queue.heartbeat(dataclasses.replace(job, claim_token=str(uuid.uuid4())), lease_seconds=10)


def expire(db: Database, job_id: int) -> None:
    """This one job's lease ran out (an hour ago, by the database's clock)."""
    with db.write() as tx:
        j = tx.t.job
        tx.execute(update(j).where(j.c.job_id == job_id).values(lease_expires_utc=db_now(-3600.0)))


def test_one_heartbeat_renews_every_lease_and_names_the_lost_ones(queue: JobQueue, db: Database, space_id: int) -> None:
    queue.enqueue_many([NewJob(JobType.RETRIEVE_TEST, retrieve(space_id, f"q{i}")) for i in range(3)])
    claims = [queue.claim(f"w/{i}", lease_seconds=10) for i in range(3)]
    kept, cancelled, taken = (claim for claim in claims if claim is not None)
    queue.cancel([cancelled.job_id])
    expire(db, taken.job_id)
    retaken = queue.claim("another", lease_seconds=10)
    assert retaken is not None and retaken.job_id == taken.job_id

    beats = [Beat(kept, {"n": 1}), Beat(cancelled, {"n": 2}), Beat(taken, {"n": 3})]
    assert queue.heartbeat_many(beats, lease_seconds=30) == {kept.job_id}
    current = queue.get(kept.job_id)
    assert current is not None and current.result == {"progress": {"n": 1}} and current.lease_expires_utc is not None
    assert current.lease_expires_utc - current.updated_utc == timedelta(seconds=30)
    for lost in (cancelled, taken):  # nothing written for a lost lease
        after = queue.get(lost.job_id)
        assert after is not None and after.result is None
    assert queue.get(taken.job_id).locked_by == "another"  # type: ignore[union-attr]
    assert queue.heartbeat_many([], lease_seconds=30) == set()


def test_a_heartbeat_blocked_by_a_lock_gives_up_within_its_timeout(
    queue: JobQueue, db: Database, space_id: int
) -> None:
    """A renewal waits at most ``timeout_s`` for the database's locks (not the default minute), so that the next
    one can come before the lease runs out."""
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id))
    job = queue.claim("w", lease_seconds=30)
    assert job is not None
    with ThreadPoolExecutor(1) as pool, db.engine.connect() as other:
        other = other.execution_options(holocron_write=True)  # SQLite: BEGIN IMMEDIATE, the write lock
        with other.begin():
            j = db.t.job
            other.execute(select(j).where(j.c.job_id == job.job_id).with_for_update())  # PostgreSQL: the row lock
            beat = pool.submit(queue.heartbeat, job, lease_seconds=30, timeout_s=0.2)
            futures.wait([beat], timeout=30)
            gave_up_while_locked = beat.done()
        assert gave_up_while_locked, "the heartbeat waited for the lock past its timeout"
        with pytest.raises(Exception, match=r"(?i)locked|lock timeout|canceling statement"):
            beat.result()
    assert queue.heartbeat(job, lease_seconds=30, timeout_s=0.2)  # and works once the lock is gone


def test_expired_lease_is_reclaimed_and_the_old_owner_cannot_overwrite(
    queue: JobQueue, db: Database, space_id: int
) -> None:
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id))
    first = queue.claim("dead-worker", lease_seconds=10)
    assert first is not None
    run_id = start_run(db, "RETRIEVE_TEST", options={}, job_id=first.job_id, worker_id="dead-worker")
    elapse(db, 11)

    second = queue.claim("w2", lease_seconds=10)
    assert second is not None and second.job_id == first.job_id
    assert second.attempt_count == 2 and second.locked_by == "w2" and second.claim_token != first.claim_token
    assert second.last_error is not None and "dead-worker stopped heartbeating" in second.last_error
    with db.read() as tx:
        run = tx.execute(select(tx.t.run).where(tx.t.run.c.run_id == run_id)).one()
    assert run.status == "FAILED" and "lost its lease" in run.error  # the dead worker's run is closed

    # The old owner comes back to life: every write of its is refused, and says so.
    assert not queue.heartbeat(first, lease_seconds=10)
    assert not queue.succeed(first, {"from": "old"})
    assert queue.fail(first, "late error") is None
    assert not queue.release(first)
    assert queue.succeed(second, {"from": "new"})
    final = queue.get(first.job_id)
    assert final is not None and final.status is JobStatus.SUCCEEDED and final.result == {"from": "new"}


def test_reclaim_dead_letters_a_job_that_has_used_its_attempts(queue: JobQueue, db: Database, space_id: int) -> None:
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), max_attempts=2).job
    for _ in range(2):
        assert queue.claim("crashy", lease_seconds=5) is not None
        elapse(db, 6)
    reclaimed = queue.reclaim_expired()
    assert reclaimed.deadlettered == [job.job_id] and not reclaimed.retried
    final = queue.get(job.job_id)
    assert final is not None and final.status is JobStatus.DEADLETTER
    assert final.last_error is not None and "crashy" in final.last_error


# --- the database's clock --------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_hours", [1, -1])
def test_a_host_whose_clock_is_off_cannot_take_a_live_job(
    db: Database, space_id: int, monkeypatch: pytest.MonkeyPatch, offset_hours: int
) -> None:
    """Leases and backoff are the database's time: a host an hour ahead cannot reclaim a live lease or take a job
    before its backoff is over, and a host an hour behind cannot hand out leases that others see as expired."""

    def own() -> tuple[JobQueue, Job, Job]:
        """Queue two jobs, claim both, fail one (it waits its backoff), heartbeat the other."""
        owner = JobQueue(db, retry_base_s=60, reclaim_every_s=0)
        live = owner.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, "live"), priority=1).job
        owner.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, "backing off"))
        claimed = owner.claim("owner", lease_seconds=30)
        assert claimed is not None and claimed.job_id == live.job_id
        waiting = owner.claim("owner", lease_seconds=30)
        assert waiting is not None
        outcome = owner.fail(waiting, "try later")
        assert outcome is not None and outcome.status is JobStatus.FAILED
        assert owner.heartbeat(claimed, lease_seconds=30)
        return owner, claimed, waiting

    if offset_hours > 0:  # the owner's clock is right, the other host's an hour ahead
        owner, claimed, waiting = own()
        shift_host_clock(monkeypatch, timedelta(hours=offset_hours))
    else:  # the owner's clock is an hour behind, the other host's right
        shift_host_clock(monkeypatch, timedelta(hours=offset_hours))
        owner, claimed, waiting = own()
        monkeypatch.undo()
    other = JobQueue(db, retry_base_s=60, reclaim_every_s=0)
    assert other.claim("other", lease_seconds=30) is None
    assert not other.reclaim_expired()
    stats = other.stats()
    assert stats.expired_leases == 0 and stats.ready == 0
    current = other.get(claimed.job_id)
    assert current is not None and current.status is JobStatus.RUNNING and current.locked_by == "owner"
    assert other.get(waiting.job_id).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert owner.succeed(claimed, {"ok": True})


# --- failure, backoff, dead letters, retry, cancel -------------------------------------------------------------


def test_failures_back_off_exponentially_then_dead_letter_keeping_the_error(db: Database, space_id: int) -> None:
    queue = JobQueue(db, retry_base_s=10, retry_cap_s=10_000, rng=random.Random(1))
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), max_attempts=5).job
    delays = []
    for attempt in range(1, 5):
        claimed = queue.claim("w", lease_seconds=30)
        assert claimed is not None and claimed.attempt_count == attempt
        outcome = queue.fail(claimed, f"error {attempt}")
        assert outcome is not None and outcome.status is JobStatus.FAILED and outcome.available_utc is not None
        assert outcome.retry_in_seconds is not None
        failed = queue.get(job.job_id)
        assert failed is not None and failed.available_utc == outcome.available_utc
        waits = (outcome.available_utc - failed.updated_utc).total_seconds()
        assert waits == pytest.approx(outcome.retry_in_seconds, abs=0.002)  # SQLite's clock has milliseconds
        delays.append(outcome.retry_in_seconds)
        assert queue.claim("w", lease_seconds=30) is None  # not before its time
        elapse(db, outcome.retry_in_seconds)
    assert all(later > earlier for earlier, later in itertools.pairwise(delays)), delays
    assert 7.5 <= delays[0] <= 10 and 60 <= delays[3] <= 80  # 10 s doubling, up to a quarter jittered off

    last = queue.claim("w", lease_seconds=30)
    assert last is not None
    outcome = queue.fail(last, "final error")
    assert outcome is not None and outcome.status is JobStatus.DEADLETTER and outcome.retry_in_seconds is None
    dead = queue.get(job.job_id)
    assert dead is not None and dead.last_error == "final error" and dead.completed_utc is not None
    assert queue.claim("w", lease_seconds=30) is None

    assert queue.retry([job.job_id]) == [job.job_id]  # one command brings it back
    again = queue.claim("w", lease_seconds=30)
    assert again is not None and again.attempt_count == 1 and again.job_id == job.job_id


def test_permanent_failure_skips_the_retries(queue: JobQueue, space_id: int) -> None:
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id))
    claimed = queue.claim("w", lease_seconds=30)
    assert claimed is not None
    outcome = queue.fail(claimed, "no such space", permanent=True)
    assert outcome is not None and outcome.status is JobStatus.DEADLETTER and outcome.attempt_count == 1


def test_retry_all_dead_letters_and_only_those(queue: JobQueue, space_id: int) -> None:
    ids = [queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), max_attempts=1).job.job_id for _ in range(3)]
    for _ in ids[:2]:
        job = queue.claim("w", lease_seconds=30)
        assert job is not None
        queue.fail(job, "x")
    assert queue.retry(all_deadletter=True) == sorted(ids[:2])
    assert queue.retry([ids[2]]) == []  # NEW: nothing to retry
    assert all(j.status is JobStatus.NEW for j in queue.list())


def test_release_returns_the_job_without_spending_an_attempt(queue: JobQueue, space_id: int) -> None:
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id)).job
    claimed = queue.claim("w", lease_seconds=30)
    assert claimed is not None
    assert queue.release(claimed)
    released = queue.get(job.job_id)
    assert released is not None and released.status is JobStatus.NEW and released.attempt_count == 0
    assert released.locked_by is None and released.lease_expires_utc is None


def test_cancel_stops_new_and_running_jobs_and_frees_the_key(queue: JobQueue, space_id: int) -> None:
    waiting = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="a").job
    running = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), priority=9).job
    claimed = queue.claim("w", lease_seconds=30)
    assert claimed is not None and claimed.job_id == running.job_id
    assert queue.cancel([waiting.job_id, running.job_id]) == sorted([waiting.job_id, running.job_id])
    assert not queue.heartbeat(claimed, lease_seconds=30)  # the worker learns it here
    assert not queue.succeed(claimed)
    assert queue.cancel([running.job_id]) == []
    assert queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), dedupe_key="a").created


def test_stats_count_per_type_and_status(queue: JobQueue, db: Database, space_id: int) -> None:
    for _ in range(3):
        queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id))
    queue.enqueue(JobType.EMBED_CHUNKS, {"space_id": space_id, "chunk_ids": [CHUNK_ID]})
    job = queue.claim("w", lease_seconds=30)
    assert job is not None
    queue.succeed(job)
    elapse(db, 5)
    stats = queue.stats()
    assert stats.counts == {"EMBED_CHUNKS": {"SUCCEEDED": 1}, "RETRIEVE_TEST": {"NEW": 3}}
    assert stats.ready == 3 and stats.completed_last_hour == 1 and stats.expired_leases == 0
    assert stats.oldest_ready_seconds is not None and stats.oldest_ready_seconds >= 5
    assert stats.totals()["NEW"] == 3


# --- backoff formula -------------------------------------------------------------------------------------------


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=100),
    jitter=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_its_jitter_band(attempt: int, base: float, jitter: float, seed: int) -> None:
    cap = 3600.0
    exponential = min(cap, base * 2 ** min(attempt - 1, 64))
    delay = backoff_delay(attempt, base=base, cap=cap, jitter=jitter, rng=random.Random(seed))
    assert exponential * (1 - jitter) - 1e-9 <= delay <= exponential + 1e-9


def test_backoff_grows_until_the_cap() -> None:
    rng = random.Random(3)
    delays = [backoff_delay(n, base=1, cap=100, rng=rng) for n in range(1, 8)]
    assert all(b > a for a, b in itertools.pairwise(delays))
    assert backoff_delay(50, base=1, cap=100, jitter=0) == 100
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, base=1, cap=10)


# --- the worker loop, with no-op handlers ----------------------------------------------------------------------


def test_the_default_lease_is_seconds_not_a_minute() -> None:
    """A killed worker's job comes back after about a lease (see test_worker_processes.py for the real thing)."""
    default = Settings.model_fields["lease_seconds"].default
    assert default == WorkerOptions().lease_seconds <= 20


@pytest.fixture()
def holo(db_url: str, db: Database, tmp_path: Path) -> Iterator[Holocron]:
    with Holocron(Settings(database_url=db_url, home=tmp_path / "home")) as instance:
        yield instance


def noop(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
    return {"query": payload.queries[0]}


def test_worker_drains_the_queue_and_records_a_run_per_job(holo: Holocron, space_id: int) -> None:
    queue = JobQueue(holo.db)
    queue.enqueue_many([NewJob(JobType.RETRIEVE_TEST, retrieve(space_id, f"q{i}")) for i in range(5)])
    options = WorkerOptions(worker_id="w", spaces=[space_id], drain=True, concurrency=2)
    report = Worker(holo, options, handlers={JobType.RETRIEVE_TEST: noop}).run()
    assert report.claimed == report.succeeded == 5 and report.stop_reason == "drained"
    jobs = queue.list()
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}
    with holo.db.read() as tx:
        runs = tx.execute(select(tx.t.run)).all()
    assert sorted(r.job_id for r in runs) == sorted(j.job_id for j in jobs)
    # Which slot takes which job is up to the scheduler; every run names one of the two slots.
    assert {r.status for r in runs} == {"SUCCEEDED"} and {r.worker_id for r in runs} <= {"w/0", "w/1"}
    assert all(j.result is not None and j.result["run_id"] in {r.run_id for r in runs} for j in jobs)


def test_worker_failures_are_retried_then_dead_lettered(holo: Holocron, space_id: int) -> None:
    def broken(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
        raise RuntimeError("model server unreachable")

    queue = JobQueue(holo.db, retry_base_s=0)
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), max_attempts=3).job
    report = Worker(
        holo,
        WorkerOptions(spaces=[space_id], drain=True),
        handlers={JobType.RETRIEVE_TEST: broken},
        queue=queue,
    ).run()
    assert (report.failed, report.deadlettered) == (2, 1)
    dead = queue.get(job.job_id)
    assert dead is not None and dead.status is JobStatus.DEADLETTER and dead.attempt_count == 3
    assert dead.last_error == "RuntimeError: model server unreachable"
    with holo.db.read() as tx:
        errors = [r.error for r in tx.execute(select(tx.t.run.c.error).where(tx.t.run.c.job_id == job.job_id))]
    assert errors == ["RuntimeError: model server unreachable"] * 3


def test_graceful_stop_releases_the_running_job(holo: Holocron, space_id: int) -> None:
    started = threading.Event()

    def long_job(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
        started.set()
        while True:  # a long job: checks in between units of work
            ctx.checkpoint()
            threading.Event().wait(0.01)

    queue = JobQueue(holo.db)
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id)).job
    worker = Worker(holo, WorkerOptions(spaces=[space_id]), handlers={JobType.RETRIEVE_TEST: long_job})
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(30)
    worker.stop("test asked")
    thread.join(30)
    assert not thread.is_alive()
    assert worker.report.released == 1 and worker.report.stop_reason == "test asked"
    released = queue.get(job.job_id)
    assert released is not None and released.status is JobStatus.NEW and released.attempt_count == 0
    with holo.db.read() as tx:
        run = tx.execute(select(tx.t.run)).one()
    assert run.status == "FAILED" and run.error == "interrupted: test asked"


def test_heartbeats_keep_a_long_job_and_a_cancel_interrupts_it(holo: Holocron, space_id: int) -> None:
    started = threading.Event()
    seen_lease: list[bool] = []

    def long_job(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
        started.set()
        try:
            while True:
                ctx.report_progress(step="waiting")
                ctx.checkpoint()
                threading.Event().wait(0.02)
        except JobInterruptedError as exc:
            seen_lease.append(exc.lease_lost)
            raise

    queue = JobQueue(holo.db)
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id)).job
    options = WorkerOptions(spaces=[space_id], lease_seconds=2.0, heartbeat_seconds=0.1, drain=True)
    worker = Worker(holo, options, handlers={JobType.RETRIEVE_TEST: long_job})
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(30)
    deadline = utcnow() + timedelta(seconds=30)
    while utcnow() < deadline:  # wait until a heartbeat has published the progress
        current = queue.get(job.job_id)
        if current is not None and current.result == {"progress": {"step": "waiting"}}:
            break
        threading.Event().wait(0.05)
    assert queue.cancel([job.job_id]) == [job.job_id]
    thread.join(30)
    assert not thread.is_alive()
    assert seen_lease == [True] and worker.report.lost == 1
    final = queue.get(job.job_id)
    assert final is not None and final.status is JobStatus.CANCELLED


def test_every_failed_attempt_is_logged_once_with_its_traceback(
    holo: Holocron, space_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    def explode_in_the_handler(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
        raise RuntimeError("model server unreachable")

    queue = JobQueue(holo.db, retry_base_s=0)
    job = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id), max_attempts=2).job
    caplog.set_level(logging.INFO)  # the default level: no --verbose
    Worker(
        holo,
        WorkerOptions(spaces=[space_id], drain=True),
        handlers={JobType.RETRIEVE_TEST: explode_in_the_handler},
        queue=queue,
    ).run()
    failures = [r for r in caplog.records if r.name == "holocron.jobs.worker" and r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failures] == [
        f"job {job.job_id} RETRIEVE_TEST attempt {n} failed: RuntimeError: model server unreachable" for n in (1, 2)
    ]
    for record in failures:
        assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    # Both log formats show the traceback at the default level, the JSON one in its "error" field.
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        configure_logging("text", "INFO")
        text_line = root.handlers[0].format(failures[0])
        configure_logging("json", "INFO")
        record = json.loads(root.handlers[0].format(failures[0]))
    finally:
        root.handlers[:] = saved
    assert "Traceback (most recent call last)" in text_line and "explode_in_the_handler" in text_line
    assert record["level"] == "error" and record["message"] == failures[0].getMessage()
    assert "explode_in_the_handler" in record["error"] and "RuntimeError: model server unreachable" in record["error"]


def test_the_heartbeat_thread_reclaims_expired_leases_while_every_slot_is_busy(holo: Holocron, space_id: int) -> None:
    """No claim happens while the only slot is busy; the worker's own sweep still puts a dead worker's job back
    and closes the runs that dead processes left open."""
    started, finish = threading.Event(), threading.Event()

    def long_job(ctx: JobContext, payload: Any) -> Mapping[str, Any]:
        started.set()
        while not finish.wait(0.02):
            ctx.checkpoint()
        return {}

    queue = JobQueue(holo.db)
    queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, "long"), priority=5)
    options = WorkerOptions(spaces=[space_id], lease_seconds=30, heartbeat_seconds=0.1, concurrency=1)
    worker = Worker(holo, options, handlers={JobType.RETRIEVE_TEST: long_job}, queue=JobQueue(holo.db))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert started.wait(30)
        orphan = queue.enqueue(JobType.RETRIEVE_TEST, retrieve(space_id, "orphan")).job
        dead = queue.claim("dead-worker", lease_seconds=30)
        assert dead is not None and dead.job_id == orphan.job_id
        expire(holo.db, orphan.job_id)
        left_open = start_run(holo.db, "INDEX", options={})  # a run whose process died: its lease runs out
        with holo.db.write() as tx:
            r = tx.t.run
            tx.execute(update(r).where(r.c.run_id == left_open).values(lease_expires_utc=utcnow() - timedelta(hours=1)))

        def swept() -> bool:
            current = queue.get(orphan.job_id)
            with holo.db.read() as tx:
                run_status = tx.execute(select(tx.t.run.c.status).where(tx.t.run.c.run_id == left_open)).scalar_one()
            return current is not None and current.status is not JobStatus.RUNNING and run_status != "RUNNING"

        deadline = utcnow() + timedelta(seconds=30)
        while utcnow() < deadline and not swept():
            threading.Event().wait(0.05)
        current = queue.get(orphan.job_id)
        assert current is not None and current.status is JobStatus.FAILED, current
        assert current.last_error is not None and "dead-worker stopped heartbeating" in current.last_error
        with holo.db.read() as tx:
            run = tx.execute(select(tx.t.run).where(tx.t.run.c.run_id == left_open)).one()
        assert run.status == "FAILED" and run.completed_utc is not None
        assert not finish.is_set() and worker.report.claimed == 1  # the slot was busy all along
    finally:
        finish.set()
        worker.stop("test done")
        thread.join(30)
    assert not thread.is_alive()
