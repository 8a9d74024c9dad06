"""What a job is: its type, its status, its row, and the typed payload of each type.

The payload models are the contract of ``vector.job.input_json``: the queue validates every payload against
them before it stores anything, so a handler never sees a malformed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from holocron.chunking import ChunkPolicy
from holocron.vocabulary import JOB_STATUSES, JOB_TYPES


class JobType(StrEnum):
    CHUNK_SOURCE = "CHUNK_SOURCE"
    EMBED_CHUNKS = "EMBED_CHUNKS"
    REEMBED_SPACE = "REEMBED_SPACE"
    RETRIEVE_TEST = "RETRIEVE_TEST"
    DRIFT_TEST = "DRIFT_TEST"


class JobStatus(StrEnum):
    NEW = "NEW"  # waiting for its first attempt (or released by a stopping worker)
    RUNNING = "RUNNING"  # claimed; owned by ``locked_by`` until ``lease_expires_utc``
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # an attempt failed; retried at ``available_utc``
    DEADLETTER = "DEADLETTER"  # out of attempts (or a permanent error); ``last_error`` says why
    CANCELLED = "CANCELLED"


# The database's CHECK constraints and these enums must never disagree.
assert tuple(JobType) == JOB_TYPES, "JobType and schema.JOB_TYPES differ"
assert tuple(JobStatus) == JOB_STATUSES, "JobStatus and schema.JOB_STATUSES differ"

READY_STATUSES = (JobStatus.NEW, JobStatus.FAILED)
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.DEADLETTER, JobStatus.CANCELLED)


@dataclass(frozen=True, kw_only=True)
class QueuedJob:
    """The columns every queue table has (``vector.job``, ``llm.job``): what the queue itself reads and writes."""

    job_id: int
    status: JobStatus
    priority: int
    input: dict[str, Any]
    dedupe_key: str | None
    max_attempts: int
    attempt_count: int
    locked_by: str | None
    locked_utc: datetime | None
    lease_expires_utc: datetime | None
    available_utc: datetime
    last_error: str | None
    result: dict[str, Any] | None
    created_utc: datetime
    updated_utc: datetime
    completed_utc: datetime | None
    claim_token: str | None = field(default=None, repr=False)
    """The fencing token of the claim that returned this job (the owner's writes match on it); None for a job
    read any other way. Never shown: whoever holds it can act as the job's owner."""

    @staticmethod
    def queue_fields(row: Any, with_claim_token: bool, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The common columns of a queue row; only a claim passes ``with_claim_token``. ``names`` maps the
        queue's column names to a table's own where they differ (``attempt_count`` -> ``attempt``)."""
        m = row._mapping
        renamed = names or {}

        def get(key: str) -> Any:
            return m.get(renamed.get(key, key))

        result = get("result_json")
        return {
            "job_id": int(get("job_id")),
            "status": JobStatus(get("status")),
            "priority": int(get("priority")),
            "input": dict(get("input_json") or {}),
            "dedupe_key": get("dedupe_key"),
            "max_attempts": int(get("max_attempts")),
            "attempt_count": int(get("attempt_count")),
            "locked_by": get("locked_by"),
            "locked_utc": get("locked_utc"),
            "lease_expires_utc": get("lease_expires_utc"),
            "available_utc": get("available_utc"),
            "last_error": get("last_error"),
            "result": dict(result) if result is not None else None,
            "created_utc": get("created_utc"),
            "updated_utc": get("updated_utc"),
            "completed_utc": get("completed_utc"),
            "claim_token": get("claim_token") if with_claim_token else None,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("claim_token")
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
            elif isinstance(value, StrEnum):
                data[key] = str(value)
        return data


@dataclass(frozen=True, kw_only=True)
class Job(QueuedJob):
    """One ``vector.job`` row."""

    job_type: JobType
    embedding_space_id: int | None

    @classmethod
    def from_row(cls, row: Any, *, with_claim_token: bool = False) -> Job:
        """The job of a row; only a claim passes ``with_claim_token`` (it hands the token to the claimer)."""
        m = row._mapping
        return cls(
            job_type=JobType(m["job_type"]),
            embedding_space_id=m["embedding_space_id"],
            **cls.queue_fields(row, with_claim_token),
        )


# --- payloads --------------------------------------------------------------------------------------------------

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ChunkId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
SpaceId = Annotated[int, Field(ge=1, le=2**31 - 1)]  # the space id column is 32-bit on PostgreSQL
BatchSize = Annotated[int, Field(ge=1, le=4096)]


class JobPayload(BaseModel):
    """Base of every payload: unknown fields are an error, and each type says how it is queued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_type: ClassVar[JobType]
    description: ClassVar[str]
    default_priority: ClassVar[int] = 0
    default_max_attempts: ClassVar[int] = 5
    space_field: ClassVar[str]
    """The field naming the space whose model the job needs: it routes the job to workers serving it."""

    def routing_space_id(self) -> int:
        value: int = getattr(self, self.space_field)
        return value


class ChunkPolicySpec(BaseModel):
    """A chunk policy as a payload carries it: :meth:`holocron.chunking.ChunkPolicy.to_json`'s fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: str
    chunk_size: Annotated[int, Field(ge=1, le=2**31 - 1)]
    overlap: Annotated[int, Field(ge=0, le=2**31 - 1)]
    max_chunks: Annotated[int, Field(ge=1, le=2**31 - 1)]
    tokenizer: str = ""
    context: str = ""
    version: str | None = None
    """Checked against the other fields when given (a record whose version and parameters disagree is refused)."""

    @model_validator(mode="after")
    def _a_valid_policy(self) -> ChunkPolicySpec:
        self.to_policy()  # its own checks: overlap below the size, a known algorithm, the version
        return self

    def to_policy(self) -> ChunkPolicy:
        return ChunkPolicy.from_json(self.model_dump())

    @classmethod
    def of(cls, policy: ChunkPolicy) -> ChunkPolicySpec:
        return cls.model_validate(policy.to_json())

    @model_serializer(mode="wrap")
    def _structure_fields_only_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """A window policy's record has no tokenizer or context fields, as before they existed."""
        data: dict[str, object] = handler(self)
        for key in ("tokenizer", "context"):
            if not data.get(key):
                data.pop(key, None)
        return data


class ChunkSourcePayload(JobPayload):
    job_type: ClassVar[JobType] = JobType.CHUNK_SOURCE
    description: ClassVar[str] = (
        "Extract and chunk a batch of sources, then queue EMBED_CHUNKS for their chunks not yet in the space."
    )
    space_field: ClassVar[str] = "space_id"

    space_id: SpaceId
    source_ids: list[NonEmpty] = Field(min_length=1, max_length=1000)
    embed: bool = True
    embed_batch_size: BatchSize | None = None
    force: bool = False
    """Re-chunk even the sources already chunked at their current content and policy."""
    chunk_policy: ChunkPolicySpec | None = None
    """The policy to chunk with, fixed when the job was queued, so that every worker cuts the same chunks
    whatever its own settings; None (payloads queued before it existed): the worker's own policy."""


class EmbedChunksPayload(JobPayload):
    job_type: ClassVar[JobType] = JobType.EMBED_CHUNKS
    description: ClassVar[str] = "Embed a batch of chunks into a space; only the missing vectors are computed."
    default_priority: ClassVar[int] = 10  # finish started work first, so search coverage grows steadily
    space_field: ClassVar[str] = "space_id"

    space_id: SpaceId
    chunk_ids: list[ChunkId] = Field(min_length=1, max_length=10_000)
    batch_size: BatchSize | None = None


class ReembedSpacePayload(JobPayload):
    job_type: ClassVar[JobType] = JobType.REEMBED_SPACE
    description: ClassVar[str] = (
        "Re-embed every chunk of one space into another (new model, tag or digest), side by side."
    )
    default_max_attempts: ClassVar[int] = 3
    space_field: ClassVar[str] = "target_space_id"

    source_space_id: SpaceId
    target_space_id: SpaceId
    batch_size: BatchSize | None = None
    page_size: Annotated[int, Field(ge=1, le=100_000)] = 2000

    @model_validator(mode="after")
    def _distinct(self) -> ReembedSpacePayload:
        if self.source_space_id == self.target_space_id:
            raise ValueError("source_space_id and target_space_id must differ")
        return self


class RetrieveTestPayload(JobPayload):
    job_type: ClassVar[JobType] = JobType.RETRIEVE_TEST
    description: ClassVar[str] = "Run a fixed query set against a space and store the retrievals and hits."
    default_max_attempts: ClassVar[int] = 3
    space_field: ClassVar[str] = "space_id"

    space_id: SpaceId
    queries: list[NonEmpty] = Field(min_length=1, max_length=1000)
    k: Annotated[int, Field(ge=1, le=1000)] = 10
    expect: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    """Optional query -> source id (the whole id, compared exactly) that must be among that query's hits."""

    @model_validator(mode="after")
    def _expectations_name_queries(self) -> RetrieveTestPayload:
        unknown = sorted(set(self.expect) - set(self.queries))
        if unknown:
            raise ValueError(f"expect names queries that are not in queries: {unknown[:3]}")
        return self


class DriftTestPayload(JobPayload):
    job_type: ClassVar[JobType] = JobType.DRIFT_TEST
    description: ClassVar[str] = (
        "Compare two spaces, or one space with itself re-embedded now: cosine of the same chunks and "
        "top-k overlap on a query set; thresholds make it pass/fail."
    )
    default_max_attempts: ClassVar[int] = 3
    space_field: ClassVar[str] = "space_id"

    space_id: SpaceId
    """The space under test: re-embedded now, or the newer of the two when ``baseline_space_id`` is given."""
    baseline_space_id: SpaceId | None = None
    """The older space to compare with; None compares ``space_id`` with its own vectors re-embedded now."""
    queries: list[NonEmpty] = Field(default_factory=list, max_length=1000)
    k: Annotated[int, Field(ge=1, le=1000)] = 10
    sample: Annotated[int, Field(ge=1, le=1_000_000)] = 2000
    min_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] | None = 0.99
    min_mean_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] | None = 0.999
    min_mean_jaccard: Annotated[float, Field(ge=0.0, le=1.0)] | None = 0.8
    fail_on_drift: bool = False
    """Dead-letter the job (instead of succeeding with ``passed: false``) when a threshold is missed."""

    @model_validator(mode="after")
    def _distinct(self) -> DriftTestPayload:
        if self.baseline_space_id == self.space_id:
            raise ValueError("baseline_space_id must differ from space_id (omit it to re-embed now)")
        return self


PAYLOADS: dict[JobType, type[JobPayload]] = {
    JobType.CHUNK_SOURCE: ChunkSourcePayload,
    JobType.EMBED_CHUNKS: EmbedChunksPayload,
    JobType.REEMBED_SPACE: ReembedSpacePayload,
    JobType.RETRIEVE_TEST: RetrieveTestPayload,
    JobType.DRIFT_TEST: DriftTestPayload,
}
assert set(PAYLOADS) == set(JobType)


class JobError(RuntimeError):
    """A job attempt failed; the queue retries it with backoff until ``max_attempts``."""


class PermanentJobError(JobError):
    """A failure that no retry can fix (a missing space, a failed drift test): straight to DEADLETTER."""


class InvalidPayloadError(ValueError):
    """A payload that does not match its type's schema; nothing was stored."""


class UnknownJobTypeError(ValueError):
    """A job type that is not one of :class:`JobType`."""


def parse_job_type(value: str | JobType) -> JobType:
    try:
        return JobType(str(value).upper())
    except ValueError:
        raise UnknownJobTypeError(f"unknown job type {value!r}; known: {', '.join(t.value for t in JobType)}") from None


def parse_status(value: str | JobStatus) -> JobStatus:
    try:
        return JobStatus(str(value).upper())
    except ValueError:
        raise ValueError(f"unknown job status {value!r}; known: {', '.join(s.value for s in JobStatus)}") from None
