"""The job queue over ``vector.job``: the whole contract in one module, the same SQL on SQLite and PostgreSQL.

Life of a job::

    enqueue ─► NEW ─claim─► RUNNING ─succeed─► SUCCEEDED
                ▲              │ │
                │   release    │ └─fail─► FAILED (available_utc = now + backoff) ─claim─► RUNNING ...
                └──────────────┘          └─ out of attempts, or permanent ─► DEADLETTER ─retry─► NEW
    lease expired (worker died) ─► FAILED, or DEADLETTER when it had no attempts left
    cancel: any unfinished job ─► CANCELLED

Guarantees:

- **Atomic claim.** One ``UPDATE ... WHERE job_id = (SELECT ... LIMIT 1) RETURNING`` statement. SQLite runs
  it inside a ``BEGIN IMMEDIATE`` transaction (one writer at a time); PostgreSQL adds ``FOR UPDATE SKIP
  LOCKED`` to the inner select, so concurrent claimers skip each other's rows instead of waiting. That clause
  is the only dialect switch. Order: highest ``priority``, then oldest ``available_utc``, then ``job_id``.
- **Leases.** A claim sets ``lease_expires_utc``; heartbeats extend it. Claims (at most every
  ``reclaim_every_s``) and the workers' periodic sweep reclaim the jobs whose lease has expired (their worker
  died or hung), so they run again without any separate reaper.
- **The database's clock.** Every time the queue writes or compares (claim, lease, heartbeat, reclaim,
  backoff, release, retry, cancel, stats) is the database server's "now" (:func:`~holocron.store.types.db_now`),
  computed inside the SQL: hosts whose clocks disagree still agree on when a lease runs out. (An
  ``available_utc`` handed to ``enqueue`` is stored as given.)
- **Fencing.** Each claim writes a fresh random ``claim_token`` and hands it to the claimer in the claimed
  :class:`~holocron.jobs.models.Job`. ``heartbeat``, ``succeed``, ``fail`` and ``release`` take that job and
  only touch a row that is still ``RUNNING`` under the same token, and say whether they did: a worker that
  lost its lease can never overwrite the result of the claim that owns the job now, even when both run under
  the same ``--worker-id``.
- **Dedupe keys** name pending work: enqueueing a key that an unfinished job (NEW, RUNNING, FAILED or
  DEADLETTER) holds returns that job. Success or cancellation frees the key, so the same work can be queued
  again later (a source edited back to an earlier version must be chunked again).
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Float, Select, Update, and_, bindparam, case, func, literal, or_, select, tuple_, update

from holocron.backoff import backoff_delay
from holocron.jobs.models import (
    PAYLOADS,
    READY_STATUSES,
    InvalidPayloadError,
    Job,
    JobPayload,
    JobStatus,
    JobType,
    parse_job_type,
)
from holocron.jobs.notify import notify_job_available
from holocron.store.database import Database, Tx, insert_ignoring_conflicts
from holocron.store.schema import tables_for
from holocron.store.types import db_now

RETRY_BASE_S = 5.0
RETRY_CAP_S = 600.0
RETRY_JITTER = 0.25
ERROR_MAX_CHARS = 4000
RECLAIM_EVERY_S = 1.0
"""Claims reclaim expired leases at most this often (per queue client): a dead worker's job waits its lease
plus up to this long."""


@dataclass(frozen=True)
class NewJob:
    """A job to enqueue: its type and payload, and how it is queued (defaults come from the payload type)."""

    job_type: JobType | str
    payload: Mapping[str, Any] | JobPayload
    priority: int | None = None
    dedupe_key: str | None = None
    max_attempts: int | None = None
    available_utc: datetime | None = None


@dataclass(frozen=True)
class Enqueued:
    job: Job
    created: bool
    """False when the dedupe key was already held and ``job`` is the existing job."""


@dataclass(frozen=True)
class FailOutcome:
    status: JobStatus
    """FAILED (will be retried at ``available_utc``) or DEADLETTER."""
    available_utc: datetime | None
    attempt_count: int
    retry_in_seconds: float | None = None
    """The backoff before the retry (None when dead-lettered): ``available_utc`` is the database's now plus it."""


@dataclass(frozen=True)
class Beat:
    """One lease to renew: the claimed job, and progress to publish in its ``result_json`` (None: unchanged)."""

    job: Job
    progress: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reclaimed:
    retried: list[int] = field(default_factory=list)
    deadlettered: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.retried or self.deadlettered)


@dataclass(frozen=True)
class QueueStats:
    counts: dict[str, dict[str, int]]
    """job type -> status -> number of jobs."""
    ready: int
    """Jobs claimable now."""
    oldest_ready_seconds: float | None
    """How long the oldest claimable job has been waiting: the queue's lag."""
    expired_leases: int
    completed_last_hour: int

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {status.value: 0 for status in JobStatus}
        for per_status in self.counts.values():
            for status, n in per_status.items():
                totals[status] += n
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "totals": self.totals(),
            "ready": self.ready,
            "oldest_ready_seconds": self.oldest_ready_seconds,
            "expired_leases": self.expired_leases,
            "completed_last_hour": self.completed_last_hour,
        }


# --- the hot statements ----------------------------------------------------------------------------------------
# Built once per dialect with bind parameters and then reused: SQLAlchemy skips rebuilding and re-keying them,
# which is most of what a claim costs in Python. Together they are the queue's contract, readable in one place.
# Every "now" in them is the database's clock (db_now), never a value computed on this host.


def _lease_expires() -> Any:
    """The database's now plus the lease the caller asked for (bound as ``p_lease``, in seconds)."""
    return db_now(bindparam("p_lease", type_=Float()))


@functools.cache
def _claim_sql(dialect: str, by_type: bool, by_space: bool) -> Update:
    """Take the best ready job in one statement; on PostgreSQL concurrent claimers skip each other's rows."""
    j = tables_for(dialect).job
    now = db_now()
    candidate = select(j.c.job_id).where(j.c.status.in_(READY_STATUSES), j.c.available_utc <= now)
    if by_type:
        candidate = candidate.where(j.c.job_type.in_(bindparam("p_types", expanding=True)))
    if by_space:
        candidate = candidate.where(
            or_(j.c.embedding_space_id.is_(None), j.c.embedding_space_id.in_(bindparam("p_spaces", expanding=True)))
        )
    candidate = candidate.order_by(j.c.priority.desc(), j.c.available_utc, j.c.job_id).limit(1)
    if dialect == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    return (
        update(j)
        .where(j.c.job_id == candidate.scalar_subquery(), j.c.status.in_(READY_STATUSES))
        .values(
            status=JobStatus.RUNNING.value,
            locked_by=bindparam("p_worker", type_=j.c.locked_by.type),
            claim_token=bindparam("p_token", type_=j.c.claim_token.type),
            locked_utc=now,
            lease_expires_utc=_lease_expires(),
            attempt_count=j.c.attempt_count + 1,
            updated_utc=now,
        )
        .returning(*j.c)
    )


@functools.cache
def _reclaim_sql(dialect: str) -> tuple[Update, Update, Update]:
    """Expired leases: out of attempts -> DEADLETTER, otherwise FAILED and ready now; close their open runs."""
    t = tables_for(dialect)
    j, r = t.job, t.run
    now = db_now()
    expired = and_(j.c.status == JobStatus.RUNNING.value, j.c.lease_expires_utc < now)
    reason = literal("lease expired: worker ") + func.coalesce(j.c.locked_by, "?") + " stopped heartbeating"
    common = {"lease_expires_utc": None, "claim_token": None, "updated_utc": now, "last_error": reason}
    dead = (
        update(j)
        .where(expired, j.c.attempt_count >= j.c.max_attempts)
        .values(status=JobStatus.DEADLETTER.value, completed_utc=now, **common)
        .returning(j.c.job_id)
    )
    retried = (
        update(j)
        .where(expired)
        .values(status=JobStatus.FAILED.value, available_utc=now, **common)
        .returning(j.c.job_id)
    )
    runs = (
        update(r)
        .where(r.c.job_id.in_(bindparam("p_job_ids", expanding=True)), r.c.status == "RUNNING")
        .values(status="FAILED", error="worker lost its lease (died or hung)", completed_utc=now)
    )
    return dead, retried, runs


def _owned(j: Any) -> Any:
    """The guard of every owner's write: still RUNNING under the token of the caller's claim."""
    return and_(
        j.c.job_id == bindparam("p_job", type_=j.c.job_id.type),
        j.c.claim_token == bindparam("p_token", type_=j.c.claim_token.type),
        j.c.status == JobStatus.RUNNING.value,
    )


@functools.cache
def _renew_sql(dialect: str) -> Update:
    """Every lease of one heartbeat in one statement: a slow renewal cannot starve the others."""
    j = tables_for(dialect).job
    return (
        update(j)
        .where(
            j.c.status == JobStatus.RUNNING.value,
            tuple_(j.c.job_id, j.c.claim_token).in_(bindparam("p_claims", expanding=True)),
        )
        .values(lease_expires_utc=_lease_expires(), updated_utc=db_now())
        .returning(j.c.job_id)
    )


@functools.cache
def _progress_sql(dialect: str) -> Update:
    j = tables_for(dialect).job
    return update(j).where(_owned(j)).values(result_json=bindparam("p_result", type_=j.c.result_json.type))


@functools.cache
def _succeed_sql(dialect: str) -> Update:
    j = tables_for(dialect).job
    now = db_now()
    return (
        update(j)
        .where(_owned(j))
        .values(
            status=JobStatus.SUCCEEDED.value,
            result_json=bindparam("p_result", type_=j.c.result_json.type),
            dedupe_key=None,
            lease_expires_utc=None,
            claim_token=None,
            completed_utc=now,
            updated_utc=now,
        )
    )


def _claim_token(job: Job) -> str:
    """The fencing token of a claimed job; a job read any other way has none and owns nothing."""
    if not job.claim_token:
        raise ValueError(f"job {job.job_id} carries no claim token: pass the job that claim() returned")
    return job.claim_token


def validate_payload(job_type: JobType | str, payload: Mapping[str, Any] | JobPayload) -> JobPayload:
    """The payload as its type's model, or :class:`InvalidPayloadError` naming every bad field."""
    kind = parse_job_type(job_type)
    model = PAYLOADS[kind]
    if isinstance(payload, JobPayload):
        if not isinstance(payload, model):
            raise InvalidPayloadError(f"{kind} takes a {model.__name__}, not a {type(payload).__name__}")
        return payload
    try:
        return model.model_validate(dict(payload))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidPayloadError(f"{kind} payload rejected: {problems}") from None
    except TypeError as exc:
        raise InvalidPayloadError(f"{kind} payload rejected: {exc}") from None


class JobQueue:
    """Every operation on the queue. Cheap to build; one per process (or per test) is the usual use.

    Time is the database's (see the module's notes): there is no clock to inject. Tests that need time to pass
    move the stored timestamps back instead.
    """

    def __init__(
        self,
        db: Database,
        *,
        retry_base_s: float = RETRY_BASE_S,
        retry_cap_s: float = RETRY_CAP_S,
        retry_jitter: float = RETRY_JITTER,
        rng: random.Random | None = None,
        reclaim_every_s: float = RECLAIM_EVERY_S,
    ) -> None:
        self.db = db
        self.reclaim_every_s = reclaim_every_s
        self._next_reclaim: float | None = None  # time.monotonic(): only paces this client's sweeps
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.retry_jitter = retry_jitter
        self.rng = rng

    # -- enqueue ----------------------------------------------------------------------------------------------

    def enqueue(
        self,
        job_type: JobType | str,
        payload: Mapping[str, Any] | JobPayload,
        *,
        priority: int | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        available_utc: datetime | None = None,
    ) -> Enqueued:
        """Validate and store one job; with a held ``dedupe_key``, return the job holding it instead."""
        return self.enqueue_many([NewJob(job_type, payload, priority, dedupe_key, max_attempts, available_utc)])[0]

    def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Validate every payload first (all or nothing), then store them in one transaction."""
        validated = [(item, validate_payload(item.job_type, item.payload)) for item in jobs]
        for item, _ in validated:
            if item.max_attempts is not None and item.max_attempts < 1:
                raise InvalidPayloadError("max_attempts must be at least 1")
        if not validated:
            return []
        out: list[Enqueued] = []
        with self.db.write() as tx:
            self._check_spaces(tx, {payload.routing_space_id() for _, payload in validated})
            notify_job_available(tx)  # delivered at commit: idle workers wake (PostgreSQL LISTEN/NOTIFY)
            j = tx.t.job
            for item, payload in validated:
                values = {
                    "job_type": payload.job_type.value,
                    "status": JobStatus.NEW.value,
                    "priority": payload.default_priority if item.priority is None else item.priority,
                    "input_json": payload.model_dump(mode="json"),
                    "embedding_space_id": payload.routing_space_id(),
                    "dedupe_key": item.dedupe_key,
                    "max_attempts": item.max_attempts or payload.default_max_attempts,
                    "attempt_count": 0,
                    "available_utc": item.available_utc or db_now(),
                    "created_utc": db_now(),
                    "updated_utc": db_now(),
                }
                if item.dedupe_key is None:
                    row = tx.execute(j.insert().values(**values).returning(*j.c)).one()
                    out.append(Enqueued(Job.from_row(row), True))
                    continue
                inserted = tx.execute(
                    insert_ignoring_conflicts(tx, j, ["dedupe_key"]).values(**values).returning(*j.c)
                ).first()
                if inserted is not None:
                    out.append(Enqueued(Job.from_row(inserted), True))
                    continue
                existing = tx.execute(select(j).where(j.c.dedupe_key == item.dedupe_key)).one()
                out.append(Enqueued(Job.from_row(existing), False))
        return out

    @staticmethod
    def _check_spaces(tx: Tx, space_ids: set[int]) -> None:
        s = tx.t.embedding_space
        found = set(tx.execute(select(s.c.embedding_space_id).where(s.c.embedding_space_id.in_(space_ids))).scalars())
        missing = sorted(space_ids - found)
        if missing:
            raise InvalidPayloadError(f"no embedding space with id {', '.join(map(str, missing))}")

    # -- claim ------------------------------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        types: Sequence[JobType] | None = None,
        spaces: Sequence[int] | None = None,
    ) -> Job | None:
        """Take the next ready job for this worker, or None. Reclaims expired leases first (at most every
        ``reclaim_every_s``).

        The returned job carries the claim's fencing token (``claim_token``): pass it to the owner's
        operations. ``types`` limits the job types; ``spaces`` the embedding spaces whose model this worker
        serves (jobs for other spaces are left to other workers). None means no limit.
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        params: dict[str, Any] = {
            "p_worker": worker_id,
            "p_token": str(uuid.uuid4()),
            "p_lease": float(lease_seconds),
        }
        if types is not None:
            params["p_types"] = [t.value for t in types]
        if spaces is not None:
            params["p_spaces"] = list(spaces)
        with self.db.write() as tx:
            if self._reclaim_due():
                self.reclaim_in(tx)
            statement = _claim_sql(tx.dialect, types is not None, spaces is not None)
            row = tx.execute(statement, params).first()
        return Job.from_row(row, with_claim_token=True) if row is not None else None

    def _reclaim_due(self) -> bool:
        now = time.monotonic()
        if self._next_reclaim is not None and now < self._next_reclaim:
            return False
        self._next_reclaim = now + self.reclaim_every_s
        return True

    def peek(
        self,
        *,
        types: Sequence[JobType] | None = None,
        spaces: Sequence[int] | None = None,
        limit: int = 10,
    ) -> list[Job]:
        """The jobs a claim would take next, in claim order, without taking them (``worker --dry-run``)."""
        with self.db.read() as tx:
            rows = tx.execute(self._ready(tx, types, spaces).limit(limit)).all()
        return [Job.from_row(row) for row in rows]

    @staticmethod
    def _ready(tx: Tx, types: Sequence[JobType] | None, spaces: Sequence[int] | None) -> Select[Any]:
        j = tx.t.job
        query = select(j).where(j.c.status.in_(READY_STATUSES), j.c.available_utc <= db_now())
        if types is not None:
            query = query.where(j.c.job_type.in_([t.value for t in types]))
        if spaces is not None:
            query = query.where(or_(j.c.embedding_space_id.is_(None), j.c.embedding_space_id.in_(list(spaces))))
        return query.order_by(j.c.priority.desc(), j.c.available_utc, j.c.job_id)

    # -- reclaim ----------------------------------------------------------------------------------------------

    def reclaim_expired(self, *, timeout_s: float | None = None) -> Reclaimed:
        """Put jobs whose lease expired back in the queue (claims do this too, at most every
        ``reclaim_every_s``). ``timeout_s`` bounds the wait for the database's locks."""
        with self.db.write(timeout_s=timeout_s) as tx:
            return self.reclaim_in(tx)

    @staticmethod
    def reclaim_in(tx: Tx) -> Reclaimed:
        """:meth:`reclaim_expired` inside the caller's write transaction (a sweep that does more in it)."""
        dead_sql, retried_sql, runs_sql = _reclaim_sql(tx.dialect)
        dead = list(tx.execute(dead_sql).scalars())
        retried = list(tx.execute(retried_sql).scalars())
        if dead or retried:
            # The runs those workers left open will never be finished by them.
            tx.execute(runs_sql, {"p_job_ids": dead + retried})
        return Reclaimed(retried=sorted(retried), deadlettered=sorted(dead))

    # -- the owner's operations: each takes the job claim() returned, and matches on its token -----------------

    def heartbeat(
        self,
        job: Job,
        *,
        lease_seconds: float,
        progress: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> bool:
        """Extend the lease (and publish progress in ``result_json``); False means the lease is lost."""
        return job.job_id in self.heartbeat_many(
            [Beat(job, progress)], lease_seconds=lease_seconds, timeout_s=timeout_s
        )

    def heartbeat_many(
        self, beats: Sequence[Beat], *, lease_seconds: float, timeout_s: float | None = None
    ) -> set[int]:
        """Extend the leases of several claims in one statement and publish their progress, in one transaction.

        Returns the ids of the jobs still owned; a job missing from it lost its lease (reclaimed, claimed again
        or cancelled). ``timeout_s`` bounds the wait for the database's locks, so that one blocked renewal fails
        fast and the next one comes well before the leases run out.
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if not beats:
            return set()
        claims = [(beat.job.job_id, _claim_token(beat.job)) for beat in beats]
        with self.db.write(timeout_s=timeout_s) as tx:
            alive = set(
                tx.execute(_renew_sql(tx.dialect), {"p_claims": claims, "p_lease": float(lease_seconds)}).scalars()
            )
            progress = [
                {"p_job": job_id, "p_token": token, "p_result": {"progress": dict(beat.progress)}}
                for (job_id, token), beat in zip(claims, beats, strict=True)
                if beat.progress is not None and job_id in alive
            ]
            if progress:
                tx.execute(_progress_sql(tx.dialect), progress)
        return alive

    def succeed(self, job: Job, result: Mapping[str, Any] | None = None) -> bool:
        """Record success if this claim still owns the job; False means another owner (or a cancel) won."""
        params = {"p_job": job.job_id, "p_token": _claim_token(job), "p_result": dict(result or {})}
        with self.db.write() as tx:
            return bool(tx.execute(_succeed_sql(tx.dialect), params).rowcount)

    @staticmethod
    def _owner(tx: Tx, job: Job) -> Any:
        """The same guard with literal values, for the colder operations."""
        j = tx.t.job
        return and_(
            j.c.job_id == job.job_id, j.c.claim_token == _claim_token(job), j.c.status == JobStatus.RUNNING.value
        )

    def fail(self, job: Job, error: str, *, permanent: bool = False) -> FailOutcome | None:
        """Record a failed attempt: retry later with backoff, or DEADLETTER when out of attempts.

        Returns None when this claim no longer owns the job (nothing is written).
        """
        with self.db.write() as tx:
            j = tx.t.job
            owned = self._owner(tx, job)
            query = select(j.c.attempt_count, j.c.max_attempts).where(owned)
            if tx.dialect == "postgresql":
                query = query.with_for_update()
            row = tx.execute(query).first()
            if row is None:
                return None
            attempts = int(row.attempt_count)
            now = db_now()
            values: dict[str, Any] = {
                "last_error": error[:ERROR_MAX_CHARS],
                "lease_expires_utc": None,
                "claim_token": None,
                "updated_utc": now,
            }
            delay: float | None = None
            if permanent or attempts >= int(row.max_attempts):
                status = JobStatus.DEADLETTER
                values["completed_utc"] = now
            else:
                status = JobStatus.FAILED
                delay = backoff_delay(
                    attempts,
                    base=self.retry_base_s,
                    cap=self.retry_cap_s,
                    jitter=self.retry_jitter,
                    rng=self.rng,
                )
                values["available_utc"] = db_now(delay)
            available = tx.execute(
                update(j).where(owned).values(status=status.value, **values).returning(j.c.available_utc)
            ).scalar_one()
        return FailOutcome(status, available if delay is not None else None, attempts, delay)

    def release(self, job: Job) -> bool:
        """Give an unfinished job back (the worker is stopping): NEW again, and the attempt is not counted."""
        with self.db.write() as tx:
            notify_job_available(tx)
            j = tx.t.job
            outcome = tx.execute(
                update(j)
                .where(self._owner(tx, job))
                .values(
                    status=JobStatus.NEW.value,
                    attempt_count=case((j.c.attempt_count > 0, j.c.attempt_count - 1), else_=0),
                    locked_by=None,
                    locked_utc=None,
                    lease_expires_utc=None,
                    claim_token=None,
                    available_utc=db_now(),
                    updated_utc=db_now(),
                )
            )
            return bool(outcome.rowcount)

    # -- operator commands ------------------------------------------------------------------------------------

    def retry(
        self,
        job_ids: Sequence[int] = (),
        *,
        all_deadletter: bool = False,
        job_type: JobType | None = None,
    ) -> list[int]:
        """Put DEADLETTER (or FAILED or CANCELLED) jobs back to NEW with fresh attempts; returns their ids."""
        if not job_ids and not all_deadletter:
            return []
        now = db_now()
        with self.db.write() as tx:
            notify_job_available(tx)
            j = tx.t.job
            condition = (
                j.c.status == JobStatus.DEADLETTER.value
                if all_deadletter
                else and_(
                    j.c.job_id.in_(list(job_ids)),
                    j.c.status.in_([JobStatus.DEADLETTER.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value]),
                )
            )
            if job_type is not None:
                condition = and_(condition, j.c.job_type == job_type.value)
            return sorted(
                tx.execute(
                    update(j)
                    .where(condition)
                    .values(
                        status=JobStatus.NEW.value,
                        attempt_count=0,
                        locked_by=None,
                        locked_utc=None,
                        lease_expires_utc=None,
                        claim_token=None,
                        available_utc=now,
                        completed_utc=None,
                        updated_utc=now,
                    )
                    .returning(j.c.job_id)
                ).scalars()
            )

    def cancel(self, job_ids: Sequence[int]) -> list[int]:
        """Cancel unfinished jobs. A RUNNING job's worker learns it at its next heartbeat and stops."""
        now = db_now()
        with self.db.write() as tx:
            j = tx.t.job
            return sorted(
                tx.execute(
                    update(j)
                    .where(
                        j.c.job_id.in_(list(job_ids)),
                        j.c.status.not_in([JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value]),
                    )
                    .values(
                        status=JobStatus.CANCELLED.value,
                        dedupe_key=None,
                        lease_expires_utc=None,
                        claim_token=None,
                        completed_utc=now,
                        updated_utc=now,
                    )
                    .returning(j.c.job_id)
                ).scalars()
            )

    # -- inspection -------------------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self.db.read() as tx:
            row = tx.execute(select(tx.t.job).where(tx.t.job.c.job_id == job_id)).first()
        return Job.from_row(row) if row is not None else None

    def list(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        types: Sequence[JobType] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Job]:
        """Newest first."""
        with self.db.read() as tx:
            j = tx.t.job
            query = _where_jobs(select(j), j, statuses, types).order_by(j.c.job_id.desc()).limit(limit).offset(offset)
            return [Job.from_row(row) for row in tx.execute(query)]

    def count(self, *, statuses: Sequence[JobStatus] | None = None, types: Sequence[JobType] | None = None) -> int:
        """How many jobs :meth:`list` would page through."""
        with self.db.read() as tx:
            j = tx.t.job
            return int(tx.execute(_where_jobs(select(func.count()).select_from(j), j, statuses, types)).scalar_one())

    def stats(self) -> QueueStats:
        with self.db.read() as tx:
            j = tx.t.job
            now = tx.now()
            counts: dict[str, dict[str, int]] = {}
            for job_type, status, n in tx.execute(
                select(j.c.job_type, j.c.status, func.count()).group_by(j.c.job_type, j.c.status)
            ):
                counts.setdefault(job_type, {})[status] = int(n)
            ready_condition = and_(j.c.status.in_(READY_STATUSES), j.c.available_utc <= db_now())
            ready, oldest = tx.execute(select(func.count(), func.min(j.c.available_utc)).where(ready_condition)).one()
            expired = tx.execute(
                select(func.count()).where(j.c.status == JobStatus.RUNNING.value, j.c.lease_expires_utc < db_now())
            ).scalar_one()
            completed = tx.execute(
                select(func.count()).where(
                    j.c.status == JobStatus.SUCCEEDED.value, j.c.completed_utc >= db_now(-3600.0)
                )
            ).scalar_one()
        oldest_dt = _as_utc(oldest)
        return QueueStats(
            counts=counts,
            ready=int(ready),
            oldest_ready_seconds=max(0.0, (now - oldest_dt).total_seconds()) if oldest_dt else None,
            expired_leases=int(expired),
            completed_last_hour=int(completed),
        )


def _where_jobs(
    query: Select[Any], j: Any, statuses: Sequence[JobStatus] | None, types: Sequence[JobType] | None
) -> Select[Any]:
    if statuses:
        query = query.where(j.c.status.in_([s.value for s in statuses]))
    if types:
        query = query.where(j.c.job_type.in_([t.value for t in types]))
    return query


def _as_utc(value: Any) -> datetime | None:
    """``min()`` over a timestamp column comes back untyped on SQLite (a string); make it a UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
