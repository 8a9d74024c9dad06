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
- **Leases.** A claim sets ``lease_expires_utc``; heartbeats extend it. Every claim first reclaims the jobs
  whose lease has expired (their worker died or hung), so they run again without any separate reaper.
- **Lost-lease protection.** ``heartbeat``, ``succeed``, ``fail`` and ``release`` only touch a row that is
  still ``RUNNING`` and ``locked_by`` the caller, and say whether they did: a worker that lost its lease can
  never overwrite the result of the worker that owns the job now.
- **Dedupe keys** name pending work: enqueueing a key that an unfinished job (NEW, RUNNING, FAILED or
  DEADLETTER) holds returns that job. Success or cancellation frees the key, so the same work can be queued
  again later (a source edited back to an earlier version must be chunked again).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, Update, and_, bindparam, case, func, literal, or_, select, update

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
from holocron.store.types import utcnow

RETRY_BASE_S = 5.0
RETRY_CAP_S = 600.0
RETRY_JITTER = 0.25
ERROR_MAX_CHARS = 4000
RECLAIM_EVERY_S = 1.0
"""Claims reclaim expired leases at most this often (by the queue's clock): a dead worker's job waits its lease
plus up to this long."""

Clock = Callable[[], datetime]


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


@functools.cache
def _claim_sql(dialect: str, by_type: bool, by_space: bool) -> Update:
    """Take the best ready job in one statement; on PostgreSQL concurrent claimers skip each other's rows."""
    j = tables_for(dialect).job
    now = bindparam("p_now", type_=j.c.updated_utc.type)
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
            locked_utc=now,
            lease_expires_utc=bindparam("p_lease_expires", type_=j.c.lease_expires_utc.type),
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
    now = bindparam("p_now", type_=j.c.updated_utc.type)
    expired = and_(j.c.status == JobStatus.RUNNING.value, j.c.lease_expires_utc < now)
    reason = literal("lease expired: worker ") + func.coalesce(j.c.locked_by, "?") + " stopped heartbeating"
    common = {"lease_expires_utc": None, "updated_utc": now, "last_error": reason}
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
    """The guard of every owner's write: still RUNNING and still locked by this worker."""
    return and_(
        j.c.job_id == bindparam("p_job", type_=j.c.job_id.type),
        j.c.locked_by == bindparam("p_worker", type_=j.c.locked_by.type),
        j.c.status == JobStatus.RUNNING.value,
    )


@functools.cache
def _heartbeat_sql(dialect: str, with_progress: bool) -> Update:
    j = tables_for(dialect).job
    values: dict[str, Any] = {
        "lease_expires_utc": bindparam("p_lease_expires", type_=j.c.lease_expires_utc.type),
        "updated_utc": bindparam("p_now", type_=j.c.updated_utc.type),
    }
    if with_progress:
        values["result_json"] = bindparam("p_result", type_=j.c.result_json.type)
    return update(j).where(_owned(j)).values(**values)


@functools.cache
def _succeed_sql(dialect: str) -> Update:
    j = tables_for(dialect).job
    now = bindparam("p_now", type_=j.c.updated_utc.type)
    return (
        update(j)
        .where(_owned(j))
        .values(
            status=JobStatus.SUCCEEDED.value,
            result_json=bindparam("p_result", type_=j.c.result_json.type),
            dedupe_key=None,
            lease_expires_utc=None,
            completed_utc=now,
            updated_utc=now,
        )
    )


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

    ``clock`` is injectable so that tests can move time (lease expiry, backoff) without sleeping.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = utcnow,
        retry_base_s: float = RETRY_BASE_S,
        retry_cap_s: float = RETRY_CAP_S,
        retry_jitter: float = RETRY_JITTER,
        rng: random.Random | None = None,
        reclaim_every_s: float = RECLAIM_EVERY_S,
    ) -> None:
        self.db = db
        self.reclaim_every_s = reclaim_every_s
        self._next_reclaim: datetime | None = None
        self.clock = clock
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
        now = self.clock()
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
                    "available_utc": item.available_utc or now,
                    "created_utc": now,
                    "updated_utc": now,
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
        """Take the next ready job for this worker, or None. Reclaims expired leases first.

        ``types`` limits the job types; ``spaces`` the embedding spaces whose model this worker serves (jobs
        for other spaces are left to other workers). None means no limit.
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        now = self.clock()
        params: dict[str, Any] = {
            "p_now": now,
            "p_worker": worker_id,
            "p_lease_expires": now + timedelta(seconds=lease_seconds),
        }
        if types is not None:
            params["p_types"] = [t.value for t in types]
        if spaces is not None:
            params["p_spaces"] = list(spaces)
        with self.db.write() as tx:
            if self._next_reclaim is None or now >= self._next_reclaim:
                self._reclaim(tx, now)
                self._next_reclaim = now + timedelta(seconds=self.reclaim_every_s)
            statement = _claim_sql(tx.dialect, types is not None, spaces is not None)
            row = tx.execute(statement, params).first()
        return Job.from_row(row) if row is not None else None

    def peek(
        self,
        *,
        types: Sequence[JobType] | None = None,
        spaces: Sequence[int] | None = None,
        limit: int = 10,
    ) -> list[Job]:
        """The jobs a claim would take next, in claim order, without taking them (``worker --dry-run``)."""
        with self.db.read() as tx:
            rows = tx.execute(self._ready(tx, self.clock(), types, spaces).limit(limit)).all()
        return [Job.from_row(row) for row in rows]

    @staticmethod
    def _ready(tx: Tx, now: datetime, types: Sequence[JobType] | None, spaces: Sequence[int] | None) -> Select[Any]:
        j = tx.t.job
        query = select(j).where(j.c.status.in_(READY_STATUSES), j.c.available_utc <= now)
        if types is not None:
            query = query.where(j.c.job_type.in_([t.value for t in types]))
        if spaces is not None:
            query = query.where(or_(j.c.embedding_space_id.is_(None), j.c.embedding_space_id.in_(list(spaces))))
        return query.order_by(j.c.priority.desc(), j.c.available_utc, j.c.job_id)

    # -- reclaim ----------------------------------------------------------------------------------------------

    def reclaim_expired(self) -> Reclaimed:
        """Put jobs whose lease expired back in the queue (claim does this too, on every call)."""
        with self.db.write() as tx:
            return self._reclaim(tx, self.clock())

    @staticmethod
    def _reclaim(tx: Tx, now: datetime) -> Reclaimed:
        dead_sql, retried_sql, runs_sql = _reclaim_sql(tx.dialect)
        dead = list(tx.execute(dead_sql, {"p_now": now}).scalars())
        retried = list(tx.execute(retried_sql, {"p_now": now}).scalars())
        if dead or retried:
            # The runs those workers left open will never be finished by them.
            tx.execute(runs_sql, {"p_now": now, "p_job_ids": dead + retried})
        return Reclaimed(retried=sorted(retried), deadlettered=sorted(dead))

    # -- the owner's operations -------------------------------------------------------------------------------

    @staticmethod
    def _owned(tx: Tx, job_id: int, worker_id: str) -> Any:
        """The same guard with literal values, for the colder operations."""
        j = tx.t.job
        return and_(j.c.job_id == job_id, j.c.locked_by == worker_id, j.c.status == JobStatus.RUNNING.value)

    def heartbeat(
        self, job_id: int, worker_id: str, *, lease_seconds: float, progress: Mapping[str, Any] | None = None
    ) -> bool:
        """Extend the lease (and publish progress in ``result_json``); False means the lease is lost."""
        now = self.clock()
        params: dict[str, Any] = {
            "p_job": job_id,
            "p_worker": worker_id,
            "p_now": now,
            "p_lease_expires": now + timedelta(seconds=lease_seconds),
        }
        if progress is not None:
            params["p_result"] = {"progress": dict(progress)}
        with self.db.write() as tx:
            return bool(tx.execute(_heartbeat_sql(tx.dialect, progress is not None), params).rowcount)

    def succeed(self, job_id: int, worker_id: str, result: Mapping[str, Any] | None = None) -> bool:
        """Record success if this worker still owns the job; False means another owner (or a cancel) won."""
        params = {"p_job": job_id, "p_worker": worker_id, "p_now": self.clock(), "p_result": dict(result or {})}
        with self.db.write() as tx:
            return bool(tx.execute(_succeed_sql(tx.dialect), params).rowcount)

    def fail(self, job_id: int, worker_id: str, error: str, *, permanent: bool = False) -> FailOutcome | None:
        """Record a failed attempt: retry later with backoff, or DEADLETTER when out of attempts.

        Returns None when this worker no longer owns the job (nothing is written).
        """
        now = self.clock()
        with self.db.write() as tx:
            j = tx.t.job
            query = select(j.c.attempt_count, j.c.max_attempts).where(self._owned(tx, job_id, worker_id))
            if tx.dialect == "postgresql":
                query = query.with_for_update()
            row = tx.execute(query).first()
            if row is None:
                return None
            attempts = int(row.attempt_count)
            values: dict[str, Any] = {
                "last_error": error[:ERROR_MAX_CHARS],
                "lease_expires_utc": None,
                "updated_utc": now,
            }
            available: datetime | None = None
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
                available = now + timedelta(seconds=delay)
                values["available_utc"] = available
            tx.execute(update(j).where(self._owned(tx, job_id, worker_id)).values(status=status.value, **values))
        return FailOutcome(status, available, attempts)

    def release(self, job_id: int, worker_id: str) -> bool:
        """Give an unfinished job back (the worker is stopping): NEW again, and the attempt is not counted."""
        now = self.clock()
        with self.db.write() as tx:
            notify_job_available(tx)
            j = tx.t.job
            outcome = tx.execute(
                update(j)
                .where(self._owned(tx, job_id, worker_id))
                .values(
                    status=JobStatus.NEW.value,
                    attempt_count=case((j.c.attempt_count > 0, j.c.attempt_count - 1), else_=0),
                    locked_by=None,
                    locked_utc=None,
                    lease_expires_utc=None,
                    available_utc=now,
                    updated_utc=now,
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
        now = self.clock()
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
                        available_utc=now,
                        completed_utc=None,
                        updated_utc=now,
                    )
                    .returning(j.c.job_id)
                ).scalars()
            )

    def cancel(self, job_ids: Sequence[int]) -> list[int]:
        """Cancel unfinished jobs. A RUNNING job's worker learns it at its next heartbeat and stops."""
        now = self.clock()
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
        now = self.clock()
        with self.db.read() as tx:
            j = tx.t.job
            counts: dict[str, dict[str, int]] = {}
            for job_type, status, n in tx.execute(
                select(j.c.job_type, j.c.status, func.count()).group_by(j.c.job_type, j.c.status)
            ):
                counts.setdefault(job_type, {})[status] = int(n)
            ready_condition = and_(j.c.status.in_(READY_STATUSES), j.c.available_utc <= now)
            ready, oldest = tx.execute(select(func.count(), func.min(j.c.available_utc)).where(ready_condition)).one()
            expired = tx.execute(
                select(func.count()).where(j.c.status == JobStatus.RUNNING.value, j.c.lease_expires_utc < now)
            ).scalar_one()
            completed = tx.execute(
                select(func.count()).where(
                    j.c.status == JobStatus.SUCCEEDED.value, j.c.completed_utc >= now - timedelta(hours=1)
                )
            ).scalar_one()
        oldest_dt = _as_utc(oldest)
        return QueueStats(
            counts=counts,
            ready=int(ready),
            oldest_ready_seconds=(now - oldest_dt).total_seconds() if oldest_dt else None,
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
