"""The job queue and its workers: ``vector.job`` claimed, run, retried and recorded.

Public surface::

    from holocron.jobs import JobQueue, JobType, Worker, WorkerOptions

    queue = JobQueue(holo.db)
    queue.enqueue(JobType.RETRIEVE_TEST, {"space_id": 1, "queries": ["..."]}, dedupe_key="smoke:1")
    Worker(holo, WorkerOptions(drain=True)).run()

    job = queue.claim("me", lease_seconds=20)  # by hand: the claimed job carries its fencing token
    if job is not None:
        queue.succeed(job, {"ok": True})  # False when the lease was lost meanwhile

See ``docs/jobs.md``.
"""

from holocron.jobs.handlers import default_registry
from holocron.jobs.models import (
    PAYLOADS,
    ChunkPolicySpec,
    ChunkSourcePayload,
    DriftTestPayload,
    EmbedChunksPayload,
    InvalidPayloadError,
    Job,
    JobError,
    JobPayload,
    JobStatus,
    JobType,
    PermanentJobError,
    ReembedSpacePayload,
    RetrieveTestPayload,
    UnknownJobTypeError,
)
from holocron.jobs.queue import (
    Beat,
    Enqueued,
    FailOutcome,
    JobQueue,
    NewJob,
    QueueStats,
    Reclaimed,
    validate_payload,
)
from holocron.jobs.registry import Handler, JobContext, JobInterruptedError, JobRegistry, JobSpec, Runtime
from holocron.jobs.worker import Worker, WorkerOptions, WorkerReport, default_worker_id, run_worker

__all__ = [
    "PAYLOADS",
    "Beat",
    "ChunkPolicySpec",
    "ChunkSourcePayload",
    "DriftTestPayload",
    "EmbedChunksPayload",
    "Enqueued",
    "FailOutcome",
    "Handler",
    "InvalidPayloadError",
    "Job",
    "JobContext",
    "JobError",
    "JobInterruptedError",
    "JobPayload",
    "JobQueue",
    "JobRegistry",
    "JobSpec",
    "JobStatus",
    "JobType",
    "NewJob",
    "PermanentJobError",
    "QueueStats",
    "Reclaimed",
    "ReembedSpacePayload",
    "RetrieveTestPayload",
    "Runtime",
    "UnknownJobTypeError",
    "Worker",
    "WorkerOptions",
    "WorkerReport",
    "default_registry",
    "default_worker_id",
    "run_worker",
    "validate_payload",
]
