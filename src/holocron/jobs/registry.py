"""Job type -> handler and payload model: the one registry, and the context a handler runs in.

A handler is ``handler(ctx, payload) -> result``: it does its work through ``ctx`` (the library, the run id to
stamp on every row it writes, artifacts, progress) and returns a JSON-able result for ``vector.job``. Raising
:class:`~holocron.jobs.models.JobError` retries the job with backoff; raising
:class:`~holocron.jobs.models.PermanentJobError` dead-letters it at once. Long handlers call
``ctx.checkpoint()`` between units of work so that a stopping worker, a cancel or a lost lease interrupts
them cleanly there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from holocron.jobs.models import Job, JobPayload, JobType, PermanentJobError, parse_job_type
from holocron.lake import Artifact, write_artifact
from holocron.store.spaces import EmbeddingSpace, get_space

if TYPE_CHECKING:
    from holocron.chunking import ChunkPolicy
    from holocron.config import Settings
    from holocron.embedding.base import EmbeddingProvider
    from holocron.jobs.queue import JobQueue
    from holocron.retrieval.space_index import SyncReport
    from holocron.store.database import Database


class Runtime(Protocol):
    """What a handler needs of the library: the store, the settings, this worker's model and its space.

    :class:`holocron.Holocron` is one; the jobs layer depends on this shape, never on the facade above it.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def provider(self) -> EmbeddingProvider: ...

    @property
    def space(self) -> EmbeddingSpace: ...

    def chunk_policy(self) -> ChunkPolicy: ...

    def keep_index_up(self, space: EmbeddingSpace, *, save: bool = False) -> SyncReport | None: ...

    def prepare_queries(self) -> float | None: ...


class JobInterruptedError(Exception):
    """Raised by :meth:`JobContext.checkpoint`: the job must stop now (the worker releases or drops it)."""

    def __init__(self, reason: str, *, lease_lost: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lease_lost = lease_lost


def interrupt_if(lease_lost: bool, stop_reason: str | None) -> None:
    """A checkpoint: raise :class:`JobInterruptedError` when the lease is lost or the worker is stopping."""
    if lease_lost:
        raise JobInterruptedError("the lease was lost (expired, or the job was cancelled)", lease_lost=True)
    if stop_reason:
        raise JobInterruptedError(stop_reason)


@dataclass
class JobContext:
    """What a handler may use. The worker builds one per execution."""

    holo: Runtime
    queue: JobQueue
    job: Job
    run_id: str
    worker_id: str
    stop_requested: Callable[[], str | None] = lambda: None
    metrics: dict[str, Any] = field(default_factory=dict)
    lease_lost: bool = False
    _progress: dict[str, Any] = field(default_factory=dict)
    _progress_version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _spaces: dict[int, EmbeddingSpace] = field(default_factory=dict)

    def checkpoint(self) -> None:
        """Stop here if the worker is stopping or the job is no longer ours; otherwise return at once."""
        interrupt_if(self.lease_lost, self.stop_requested())

    def report_progress(self, **values: Any) -> None:
        """Publish progress; the next heartbeat writes it to the job's ``result_json``."""
        with self._lock:
            self._progress.update(values)
            self._progress_version += 1

    def progress_snapshot(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            return self._progress_version, dict(self._progress)

    def artifact(self, artifact_type: str, content: Any, *, extension: str = "json") -> Artifact:
        """Write a run artifact under ``lake/vector_runs/{run_id}/artifacts/`` with its sha256 recorded."""
        written = write_artifact(
            self.holo.db,
            self.holo.settings.resolved_lake_dir,
            self.run_id,
            artifact_type,
            content,
            extension=extension,
        )
        self.metrics["artifact_bytes"] = int(self.metrics.get("artifact_bytes", 0)) + written.byte_count
        return written

    def space(self, space_id: int) -> EmbeddingSpace:
        if space_id not in self._spaces:
            with self.holo.db.read() as tx:
                found = get_space(tx, space_id)
            if found is None:
                raise PermanentJobError(f"no embedding space with id {space_id}")
            self._spaces[space_id] = found
        return self._spaces[space_id]

    def serves(self, space: EmbeddingSpace) -> bool:
        """Whether this worker's model is the model of ``space``."""
        return space.matches(self.holo.provider.identity())

    def provider_for(self, space: EmbeddingSpace) -> EmbeddingProvider:
        """The worker's provider, if it is the model of ``space``; a job routed here for another is permanent."""
        if not self.serves(space):
            identity = self.holo.provider.identity()
            raise PermanentJobError(
                f"this worker serves {identity.model_name}:{identity.model_tag} "
                f"({identity.model_digest[:19]}), not the space {space.name}"
            )
        return self.holo.provider


Handler = Callable[[JobContext, Any], Mapping[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    job_type: JobType
    payload_model: type[JobPayload]
    handler: Handler

    @property
    def description(self) -> str:
        return self.payload_model.description

    def schema(self) -> dict[str, Any]:
        return self.payload_model.model_json_schema()


class JobRegistry:
    """The job types a worker can run. The default one has exactly the five real types."""

    def __init__(self, specs: Iterable[JobSpec]) -> None:
        self._specs = {spec.job_type: spec for spec in specs}

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._specs

    def spec(self, job_type: JobType | str) -> JobSpec:
        kind = parse_job_type(job_type)
        if kind not in self._specs:
            raise KeyError(f"no handler registered for {kind}")
        return self._specs[kind]

    def types(self) -> list[JobType]:
        return list(self._specs)

    def with_handlers(self, handlers: Mapping[JobType, Handler]) -> JobRegistry:
        """A copy with some handlers replaced (benchmarks and tests); the payload models stay the real ones."""
        return JobRegistry(
            JobSpec(spec.job_type, spec.payload_model, handlers.get(spec.job_type, spec.handler))
            for spec in self._specs.values()
        )
