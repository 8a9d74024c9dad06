"""The job queue: the whole contract in one module, the same SQL on SQLite and PostgreSQL, for every queue.

One implementation serves each queue table (``vector.job``, ``llm.job``): a :class:`QueueKind` names the
table, its run table, the column holding the job's type and the one routing it to workers, and how a
payload is validated. Claim, lease, fencing, heartbeat, backoff, dead-letter and dedupe are the code below,
whatever the kind. :class:`JobQueue` is the queue of ``vector.job``.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar, Unpack

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    Float,
    Integer,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)

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
from holocron.store.schema import Tables, tables_for
from holocron.store.types import db_now

RETRY_BASE_S = 5.0
RETRY_CAP_S = 600.0
RETRY_JITTER = 0.25
ERROR_MAX_CHARS = 4000
RECLAIM_EVERY_S = 1.0
"""Claims reclaim expired leases at most this often (per queue client): a dead worker's job waits its lease
plus up to this long."""


class ClaimedJob(Protocol):
    """What the queue needs of a job row it handed out: its id, attempts and the fencing token of its claim."""

    @property
    def job_id(self) -> int: ...

    @property
    def claim_token(self) -> str | None: ...


J = TypeVar("J", bound=ClaimedJob)


@dataclass(frozen=True)
class NewJob:
    """A job to enqueue: its type and payload, and how it is queued (defaults come from the payload type)."""

    job_type: JobType | str
    payload: Mapping[str, Any] | BaseModel
    priority: int | None = None
    dedupe_key: str | None = None
    max_attempts: int | None = None
    available_utc: datetime | None = None


@dataclass(frozen=True)
class PreparedJob:
    """A validated job, as its queue kind stores it."""

    job_type: str
    input_json: dict[str, Any]
    route: int | str | None
    """The value of the kind's routing column (``vector.job.embedding_space_id``); None: any worker."""
    default_priority: int
    default_max_attempts: int
    extra: dict[str, Any] = field(default_factory=dict)
    """More columns of the kind's table (``llm.job.evidence_ref_json``)."""
    dedupe_key: str | None = None
    """The dedupe key when the caller gives none (an LLM job's subject: asking twice queues once)."""


@dataclass(frozen=True, eq=False)
class QueueKind(Generic[J]):
    """One queue table and what differs between queues; every statement below is built from it."""

    name: str
    job_table: Callable[[Tables], Table]
    run_table: Callable[[Tables], Table] | None
    """Its runs (``job_id``, ``status``, ``error``, ``completed_utc``): a reclaimed job's open run is closed.
    None for a queue whose items have no run of their own (a crawl's work items belong to the crawl's run)."""
    type_column: str
    route_column: str | None
    prepare: Callable[[NewJob], PreparedJob]
    """Validate one job (raise :class:`InvalidPayloadError`): nothing is stored unless every job passes."""
    from_row: Callable[[Any, bool], J]
    """The job of a row; the flag is True only for a claim (the row's token goes to the claimer)."""
    check: Callable[[Tx, Sequence[PreparedJob]], None] | None = None
    """Checks against the store inside the enqueue's transaction (the spaces named exist)."""
    dedupe_while: Literal["unfinished", "always"] = "unfinished"
    """``unfinished``: a finished job frees its dedupe key (asking again is a new job); ``always``: the key is
    the item's identity for good (a page found twice in a crawl is fetched once)."""

    def tables(self, tx: Tx) -> tuple[Table, Table | None]:
        return self.job_table(tx.t), self.run_table(tx.t) if self.run_table is not None else None

    def type_of(self, j: Table) -> Any:
        return j.c[self.type_column]


@dataclass(frozen=True)
class Enqueued(Generic[J]):
    job: J
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

    job: ClaimedJob
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


def _tables(kind: QueueKind[Any], dialect: str) -> tuple[Table, Table | None]:
    t = tables_for(dialect)
    return kind.job_table(t), kind.run_table(t) if kind.run_table is not None else None


@functools.cache
def _claim_sql(kind: QueueKind[Any], dialect: str, by_type: bool, by_route: bool) -> Update:
    """Take the best ``p_limit`` ready jobs in one statement; on PostgreSQL concurrent claimers skip each other's
    rows (SELECT ... FOR UPDATE SKIP LOCKED under the UPDATE), on SQLite the write lock serialises them."""
    j, _ = _tables(kind, dialect)
    now = db_now()
    candidate = select(j.c.job_id).where(j.c.status.in_(READY_STATUSES), j.c.available_utc <= now)
    if by_type:
        candidate = candidate.where(kind.type_of(j).in_(bindparam("p_types", expanding=True)))
    if by_route and kind.route_column is not None:
        route = j.c[kind.route_column]
        candidate = candidate.where(or_(route.is_(None), route.in_(bindparam("p_spaces", expanding=True))))
    candidate = candidate.order_by(j.c.priority.desc(), j.c.available_utc, j.c.job_id).limit(
        bindparam("p_limit", type_=Integer)
    )
    if dialect == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    return (
        update(j)
        .where(j.c.job_id.in_(candidate.scalar_subquery()), j.c.status.in_(READY_STATUSES))
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
def _reclaim_sql(kind: QueueKind[Any], dialect: str) -> tuple[Update, Update, Update | None]:
    """Expired leases: out of attempts -> DEADLETTER, otherwise FAILED and ready now; close their open runs."""
    j, r = _tables(kind, dialect)
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
    if r is None:
        return dead, retried, None
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
def _renew_sql(kind: QueueKind[Any], dialect: str) -> Update:
    """Every lease of one heartbeat in one statement: a slow renewal cannot starve the others."""
    j, _ = _tables(kind, dialect)
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
def _progress_sql(kind: QueueKind[Any], dialect: str) -> Update:
    j, _ = _tables(kind, dialect)
    return update(j).where(_owned(j)).values(result_json=bindparam("p_result", type_=j.c.result_json.type))


def _freed_dedupe(kind: QueueKind[Any]) -> dict[str, Any]:
    """The values that free a finished job's dedupe key, when its kind frees it."""
    return {"dedupe_key": None} if kind.dedupe_while == "unfinished" else {}


@functools.cache
def _succeed_sql(kind: QueueKind[Any], dialect: str) -> Update:
    j, _ = _tables(kind, dialect)
    now = db_now()
    return (
        update(j)
        .where(_owned(j))
        .values(
            status=JobStatus.SUCCEEDED.value,
            result_json=bindparam("p_result", type_=j.c.result_json.type),
            **_freed_dedupe(kind),
            lease_expires_utc=None,
            claim_token=None,
            completed_utc=now,
            updated_utc=now,
        )
    )


def _claim_token(job: ClaimedJob) -> str:
    """The fencing token of a claimed job; a job read any other way has none and owns nothing."""
    if not job.claim_token:
        raise ValueError(f"job {job.job_id} carries no claim token: pass the job that claim() returned")
    return job.claim_token


def validate_payload(job_type: JobType | str, payload: Mapping[str, Any] | BaseModel) -> JobPayload:
    """The payload as its type's model, or :class:`InvalidPayloadError` naming every bad field."""
    kind = parse_job_type(job_type)
    model = PAYLOADS[kind]
    if isinstance(payload, BaseModel):
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


class QueueTuning(TypedDict, total=False):
    """How a queue client retries and sweeps (tests make time pass faster with these)."""

    retry_base_s: float
    retry_cap_s: float
    retry_jitter: float
    rng: random.Random | None
    reclaim_every_s: float


class Queue(Generic[J]):
    """Every operation on one queue table. Cheap to build; one per process (or per test) is the usual use.

    Time is the database's (see the module's notes): there is no clock to inject. Tests that need time to pass
    move the stored timestamps back instead.
    """

    def __init__(
        self,
        db: Database,
        kind: QueueKind[J],
        *,
        retry_base_s: float = RETRY_BASE_S,
        retry_cap_s: float = RETRY_CAP_S,
        retry_jitter: float = RETRY_JITTER,
        rng: random.Random | None = None,
        reclaim_every_s: float = RECLAIM_EVERY_S,
    ) -> None:
        self.db = db
        self.kind = kind
        self.reclaim_every_s = reclaim_every_s
        self._next_reclaim: float | None = None  # time.monotonic(): only paces this client's sweeps
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.retry_jitter = retry_jitter
        self.rng = rng

    @property
    def name(self) -> str:
        return self.kind.name

    def _row(self, row: Any, with_claim_token: bool = False) -> J:
        return self.kind.from_row(row, with_claim_token)

    # -- enqueue ----------------------------------------------------------------------------------------------

    def enqueue(
        self,
        job_type: JobType | str,
        payload: Mapping[str, Any] | BaseModel,
        *,
        priority: int | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        available_utc: datetime | None = None,
    ) -> Enqueued[J]:
        """Validate and store one job; with a held ``dedupe_key``, return the job holding it instead."""
        return self.enqueue_many([NewJob(job_type, payload, priority, dedupe_key, max_attempts, available_utc)])[0]

    def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued[J]]:
        """Validate every payload first (all or nothing), then store them in one transaction."""
        if not jobs:
            return []
        with self.db.write() as tx:
            return self.enqueue_many_in(tx, jobs)

    def enqueue_many_in(self, tx: Tx, jobs: Sequence[NewJob]) -> list[Enqueued[J]]:
        """:meth:`enqueue_many` inside the caller's write transaction: the jobs commit with what found them
        (a crawl's discovered items with the response that named them), or neither does."""
        prepared = [(item, self.kind.prepare(item)) for item in jobs]
        for item, _ in prepared:
            if item.max_attempts is not None and item.max_attempts < 1:
                raise InvalidPayloadError("max_attempts must be at least 1")
        if not prepared:
            return []
        out: list[Enqueued[J]] = []
        if self.kind.check is not None:
            self.kind.check(tx, [job for _, job in prepared])
        notify_job_available(tx)  # delivered at commit: idle workers wake (PostgreSQL LISTEN/NOTIFY)
        j, _ = self.kind.tables(tx)
        for item, job in prepared:
            dedupe_key = item.dedupe_key if item.dedupe_key is not None else job.dedupe_key
            values: dict[str, Any] = {
                self.kind.type_column: job.job_type,
                "status": JobStatus.NEW.value,
                "priority": job.default_priority if item.priority is None else item.priority,
                "input_json": job.input_json,
                "dedupe_key": dedupe_key,
                "max_attempts": item.max_attempts or job.default_max_attempts,
                "attempt_count": 0,
                "available_utc": item.available_utc or db_now(),
                "created_utc": db_now(),
                "updated_utc": db_now(),
                **job.extra,
            }
            if self.kind.route_column is not None:
                values[self.kind.route_column] = job.route
            if dedupe_key is None:
                row = tx.execute(j.insert().values(**values).returning(*j.c)).one()
                out.append(Enqueued(self._row(row), True))
                continue
            inserted = tx.execute(
                insert_ignoring_conflicts(tx, j, ["dedupe_key"]).values(**values).returning(*j.c)
            ).first()
            if inserted is not None:
                out.append(Enqueued(self._row(inserted), True))
                continue
            existing = tx.execute(select(j).where(j.c.dedupe_key == dedupe_key)).one()
            out.append(Enqueued(self._row(existing), False))
        return out

    # -- claim ------------------------------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        types: Sequence[str] | None = None,
        spaces: Sequence[int | str] | None = None,
    ) -> J | None:
        """Take the next ready job for this worker, or None (:meth:`claim_many` of one)."""
        claimed = self.claim_many(worker_id, 1, lease_seconds=lease_seconds, types=types, spaces=spaces)
        return claimed[0] if claimed else None

    def claim_many(
        self,
        worker_id: str,
        limit: int,
        *,
        lease_seconds: float,
        types: Sequence[str] | None = None,
        spaces: Sequence[int | str] | None = None,
    ) -> list[J]:
        """Take up to ``limit`` ready jobs in one statement, best first. Reclaims expired leases first (at most
        every ``reclaim_every_s``).

        Each returned job carries the claim's fencing token (``claim_token``, one per call: every owner's write
        matches the job id and the token together): pass it to the owner's operations. ``types`` limits the
        job types; ``spaces`` the routes it serves: the embedding spaces whose model this worker has, the sources
        a crawler knows (other jobs are left to other workers; only for a kind with a routing column). None
        means no limit.
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if limit < 1:
            raise ValueError("a claim takes at least one job")
        params: dict[str, Any] = {
            "p_worker": worker_id,
            "p_token": str(uuid.uuid4()),
            "p_lease": float(lease_seconds),
            "p_limit": int(limit),
        }
        by_route = spaces is not None and self.kind.route_column is not None
        if types is not None:
            params["p_types"] = [str(t) for t in types]
        if by_route and spaces is not None:
            params["p_spaces"] = list(spaces)
        with self.db.write() as tx:
            if self._reclaim_due():
                self.reclaim_in(tx)
            statement = _claim_sql(self.kind, tx.dialect, types is not None, by_route)
            rows = tx.execute(statement, params).all()
            j, _ = self.kind.tables(tx)
        # RETURNING keeps no order: the claim order again (priority first, then the oldest).
        rows.sort(
            key=lambda row: (-row._mapping[j.c.priority], row._mapping[j.c.available_utc], row._mapping[j.c.job_id])
        )
        return [self._row(row, True) for row in rows]

    def _reclaim_due(self) -> bool:
        now = time.monotonic()
        if self._next_reclaim is not None and now < self._next_reclaim:
            return False
        self._next_reclaim = now + self.reclaim_every_s
        return True

    def peek(
        self,
        *,
        types: Sequence[str] | None = None,
        spaces: Sequence[int | str] | None = None,
        limit: int = 10,
    ) -> list[J]:
        """The jobs a claim would take next, in claim order, without taking them (``worker --dry-run``)."""
        with self.db.read() as tx:
            rows = tx.execute(self._ready(tx, types, spaces).limit(limit)).all()
        return [self._row(row) for row in rows]

    def _ready(self, tx: Tx, types: Sequence[str] | None, spaces: Sequence[int | str] | None) -> Select[Any]:
        j, _ = self.kind.tables(tx)
        query = select(j).where(j.c.status.in_(READY_STATUSES), j.c.available_utc <= db_now())
        if types is not None:
            query = query.where(self.kind.type_of(j).in_([str(t) for t in types]))
        if spaces is not None and self.kind.route_column is not None:
            route = j.c[self.kind.route_column]
            query = query.where(or_(route.is_(None), route.in_(list(spaces))))
        return query.order_by(j.c.priority.desc(), j.c.available_utc, j.c.job_id)

    # -- reclaim ----------------------------------------------------------------------------------------------

    def reclaim_expired(self, *, timeout_s: float | None = None) -> Reclaimed:
        """Put jobs whose lease expired back in the queue (claims do this too, at most every
        ``reclaim_every_s``). ``timeout_s`` bounds the wait for the database's locks."""
        with self.db.write(timeout_s=timeout_s) as tx:
            return self.reclaim_in(tx)

    def reclaim_in(self, tx: Tx) -> Reclaimed:
        """:meth:`reclaim_expired` inside the caller's write transaction (a sweep that does more in it)."""
        dead_sql, retried_sql, runs_sql = _reclaim_sql(self.kind, tx.dialect)
        dead = list(tx.execute(dead_sql).scalars())
        retried = list(tx.execute(retried_sql).scalars())
        if (dead or retried) and runs_sql is not None:
            # The runs those workers left open will never be finished by them.
            tx.execute(runs_sql, {"p_job_ids": dead + retried})
        return Reclaimed(retried=sorted(retried), deadlettered=sorted(dead))

    # -- the owner's operations: each takes the job claim() returned, and matches on its token -----------------

    def heartbeat(
        self,
        job: ClaimedJob,
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
                tx.execute(
                    _renew_sql(self.kind, tx.dialect), {"p_claims": claims, "p_lease": float(lease_seconds)}
                ).scalars()
            )
            progress = [
                {"p_job": job_id, "p_token": token, "p_result": {"progress": dict(beat.progress)}}
                for (job_id, token), beat in zip(claims, beats, strict=True)
                if beat.progress is not None and job_id in alive
            ]
            if progress:
                tx.execute(_progress_sql(self.kind, tx.dialect), progress)
        return alive

    def succeed(self, job: ClaimedJob, result: Mapping[str, Any] | None = None) -> bool:
        """Record success if this claim still owns the job; False means another owner (or a cancel) won."""
        with self.db.write() as tx:
            return self.succeed_in(tx, job, result)

    def succeed_in(self, tx: Tx, job: ClaimedJob, result: Mapping[str, Any] | None = None) -> bool:
        """:meth:`succeed` inside the caller's write transaction: the job's outcome commits with what the job
        wrote, or neither does. The caller rolls back when this returns False (the claim no longer owns it)."""
        params = {"p_job": job.job_id, "p_token": _claim_token(job), "p_result": dict(result or {})}
        return bool(tx.execute(_succeed_sql(self.kind, tx.dialect), params).rowcount)

    def succeed_many_in(self, tx: Tx, outcomes: Sequence[tuple[ClaimedJob, Mapping[str, Any]]]) -> None:
        """Several successes in one statement, inside the caller's transaction; call it on jobs that
        :meth:`owned_in` found owned in that same transaction (it reports nothing per job)."""
        if outcomes:
            params = [
                {"p_job": job.job_id, "p_token": _claim_token(job), "p_result": dict(result)}
                for job, result in outcomes
            ]
            tx.execute(_succeed_sql(self.kind, tx.dialect), params)

    def owned_in(self, tx: Tx, jobs: Sequence[ClaimedJob]) -> set[int]:
        """The ids among ``jobs`` that their claims still own, their rows locked until the transaction ends
        (SQLite's write transaction locks them all), so that their outcomes can be written in bulk."""
        if not jobs:
            return set()
        j, _ = self.kind.tables(tx)
        claims = [(job.job_id, _claim_token(job)) for job in jobs]
        query = select(j.c.job_id).where(
            j.c.status == JobStatus.RUNNING.value, tuple_(j.c.job_id, j.c.claim_token).in_(claims)
        )
        if tx.dialect == "postgresql":
            query = query.with_for_update()
        return set(tx.execute(query).scalars())

    def _owner(self, tx: Tx, job: ClaimedJob) -> Any:
        """The same guard with literal values, for the colder operations."""
        j, _ = self.kind.tables(tx)
        return and_(
            j.c.job_id == job.job_id, j.c.claim_token == _claim_token(job), j.c.status == JobStatus.RUNNING.value
        )

    def fail(
        self, job: ClaimedJob, error: str, *, permanent: bool = False, not_before_s: float | None = None
    ) -> FailOutcome | None:
        """Record a failed attempt: retry later with backoff, or DEADLETTER when out of attempts.

        ``not_before_s`` is a floor on the wait (a server's ``Retry-After``). Returns None when this claim no
        longer owns the job (nothing is written).
        """
        with self.db.write() as tx:
            return self.fail_in(tx, job, error, permanent=permanent, not_before_s=not_before_s)

    def fail_in(
        self,
        tx: Tx,
        job: ClaimedJob,
        error: str,
        *,
        permanent: bool = False,
        not_before_s: float | None = None,
    ) -> FailOutcome | None:
        """:meth:`fail` inside the caller's write transaction (with the failed attempt's records)."""
        j, _ = self.kind.tables(tx)
        owned = self._owner(tx, job)
        query = select(j.c.attempt_count, j.c.max_attempts).where(owned)
        if tx.dialect == "postgresql":
            query = query.with_for_update()
        row = tx.execute(query).first()
        if row is None:
            return None
        attempts = int(row._mapping[j.c.attempt_count])  # by column: a kind may name it otherwise
        now = db_now()
        values: dict[str, Any] = {
            "last_error": error[:ERROR_MAX_CHARS],
            "lease_expires_utc": None,
            "claim_token": None,
            "updated_utc": now,
        }
        delay: float | None = None
        if permanent or attempts >= int(row._mapping[j.c.max_attempts]):
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
            delay = max(delay, not_before_s or 0.0)
            values["available_utc"] = db_now(delay)
        available = tx.execute(
            update(j).where(owned).values(status=status.value, **values).returning(j.c.available_utc)
        ).scalar_one()
        return FailOutcome(status, available if delay is not None else None, attempts, delay)

    def release(self, job: ClaimedJob) -> bool:
        """Give an unfinished job back (the worker is stopping): NEW again, and the attempt is not counted."""
        with self.db.write() as tx:
            notify_job_available(tx)
            j, _ = self.kind.tables(tx)
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
        job_type: str | None = None,
    ) -> list[int]:
        """Put DEADLETTER (or FAILED or CANCELLED) jobs back to NEW with fresh attempts; returns their ids."""
        if not job_ids and not all_deadletter:
            return []
        with self.db.write() as tx:
            j, _ = self.kind.tables(tx)
            condition = (
                j.c.status == JobStatus.DEADLETTER.value
                if all_deadletter
                else and_(
                    j.c.job_id.in_(list(job_ids)),
                    j.c.status.in_([JobStatus.DEADLETTER.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value]),
                )
            )
            if job_type is not None:
                condition = and_(condition, self.kind.type_of(j) == str(job_type))
            return self.reopen_in(tx, condition)

    def reopen_in(self, tx: Tx, condition: Any) -> list[int]:
        """Put the finished jobs ``condition`` selects back to NEW with fresh attempts (an operator's retry; a
        crawl's refresh of its completed items); returns their ids."""
        j, _ = self.kind.tables(tx)
        now = db_now()
        notify_job_available(tx)
        return sorted(
            tx.execute(
                update(j)
                .where(
                    condition,
                    j.c.status.in_(
                        [
                            JobStatus.DEADLETTER.value,
                            JobStatus.FAILED.value,
                            JobStatus.CANCELLED.value,
                            JobStatus.SUCCEEDED.value,
                        ]
                    ),
                )
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
            j, _ = self.kind.tables(tx)
            return sorted(
                tx.execute(
                    update(j)
                    .where(
                        j.c.job_id.in_(list(job_ids)),
                        j.c.status.not_in([JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value]),
                    )
                    .values(
                        status=JobStatus.CANCELLED.value,
                        **_freed_dedupe(self.kind),
                        lease_expires_utc=None,
                        claim_token=None,
                        completed_utc=now,
                        updated_utc=now,
                    )
                    .returning(j.c.job_id)
                ).scalars()
            )

    # -- inspection -------------------------------------------------------------------------------------------

    def get(self, job_id: int) -> J | None:
        with self.db.read() as tx:
            j, _ = self.kind.tables(tx)
            row = tx.execute(select(j).where(j.c.job_id == job_id)).first()
        return self._row(row) if row is not None else None

    def list(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        types: Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[J]:
        """Newest first."""
        with self.db.read() as tx:
            j, _ = self.kind.tables(tx)
            query = self._where(select(j), j, statuses, types).order_by(j.c.job_id.desc()).limit(limit).offset(offset)
            return [self._row(row) for row in tx.execute(query)]

    def count(self, *, statuses: Sequence[JobStatus] | None = None, types: Sequence[str] | None = None) -> int:
        """How many jobs :meth:`list` would page through."""
        with self.db.read() as tx:
            j, _ = self.kind.tables(tx)
            query = self._where(select(func.count()).select_from(j), j, statuses, types)
            return int(tx.execute(query).scalar_one())

    def _where(
        self, query: Select[Any], j: Table, statuses: Sequence[JobStatus] | None, types: Sequence[str] | None
    ) -> Select[Any]:
        if statuses:
            query = query.where(j.c.status.in_([s.value for s in statuses]))
        if types:
            query = query.where(self.kind.type_of(j).in_([str(t) for t in types]))
        return query

    def stats(self) -> QueueStats:
        with self.db.read() as tx:
            j, _ = self.kind.tables(tx)
            kind_column = self.kind.type_of(j)
            now = tx.now()
            counts: dict[str, dict[str, int]] = {}
            for job_type, status, n in tx.execute(
                select(kind_column, j.c.status, func.count()).group_by(kind_column, j.c.status)
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


# --- the vector queue --------------------------------------------------------------------------------------------


def _prepare_vector_job(item: NewJob) -> PreparedJob:
    payload = validate_payload(item.job_type, item.payload)
    return PreparedJob(
        job_type=payload.job_type.value,
        input_json=payload.model_dump(mode="json"),
        route=payload.routing_space_id(),
        default_priority=payload.default_priority,
        default_max_attempts=payload.default_max_attempts,
    )


def _check_spaces(tx: Tx, jobs: Sequence[PreparedJob]) -> None:
    space_ids = {job.route for job in jobs if job.route is not None}
    s = tx.t.embedding_space
    found = set(tx.execute(select(s.c.embedding_space_id).where(s.c.embedding_space_id.in_(space_ids))).scalars())
    missing = sorted(space_ids - found)
    if missing:
        raise InvalidPayloadError(f"no embedding space with id {', '.join(map(str, missing))}")


VECTOR_QUEUE: QueueKind[Job] = QueueKind(
    name="vector",
    job_table=lambda t: t.job,
    run_table=lambda t: t.run,
    type_column="job_type",
    route_column="embedding_space_id",
    prepare=_prepare_vector_job,
    from_row=lambda row, with_claim_token: Job.from_row(row, with_claim_token=with_claim_token),
    check=_check_spaces,
)


class JobQueue(Queue[Job]):
    """The queue of ``vector.job``: chunking, embedding, re-embedding and retrieval/drift tests."""

    def __init__(self, db: Database, **tuning: Unpack[QueueTuning]) -> None:
        super().__init__(db, VECTOR_QUEUE, **tuning)


def _as_utc(value: Any) -> datetime | None:
    """``min()`` over a timestamp column comes back untyped on SQLite (a string); make it a UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
