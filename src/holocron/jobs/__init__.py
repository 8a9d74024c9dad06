"""The job queue and its workers: ``vector.job`` claimed, run, retried and recorded.

Public surface::

    from holocron.jobs import JobQueue, JobType, Worker, WorkerOptions

    queue = JobQueue(holo.db)
    queue.enqueue(JobType.RETRIEVE_TEST, {"space_id": 1, "queries": ["..."]}, dedupe_key="smoke:1")
    Worker(holo, WorkerOptions(drain=True)).run()

See ``docs/jobs.md``.
"""

from holocron.jobs.handlers import default_registry
from holocron.jobs.models import (
    PAYLOADS,
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
from holocron.jobs.queue import Enqueued, FailOutcome, JobQueue, NewJob, QueueStats, Reclaimed, validate_payload
from holocron.jobs.registry import Handler, JobContext, JobInterruptedError, JobRegistry, JobSpec, Runtime
from holocron.jobs.worker import Worker, WorkerOptions, WorkerReport, default_worker_id, run_worker

__all__ = [
    "PAYLOADS",
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
