"""``llm.job`` as a lane of the worker: the same slots, heartbeat, signals and report as ``vector.job``.

``holocron worker --queues vector,llm`` runs both lanes in one process; each slot tries them in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from holocron.jobs.models import InvalidPayloadError, JobStatus, PermanentJobError
from holocron.jobs.queue import Queue
from holocron.jobs.registry import JobInterruptedError, interrupt_if
from holocron.llm.interrogations import InterrogationError
from holocron.llm.queue import LlmJob, LlmQueue
from holocron.llm.runner import LeaseLostError, LlmRunner, LlmRuntime, sweep_orphan_artifacts
from holocron.observability.logs import log_context
from holocron.store.llm import finish_llm_run_in, llm_run_ids, start_llm_run

if TYPE_CHECKING:
    from holocron.jobs.worker import Heartbeater, Worker

log = logging.getLogger("holocron.llm.lane")


@dataclass
class LlmJobContext:
    """A running LLM job, as the heartbeat tracks it."""

    job: LlmJob
    queue: Queue[Any]
    lease_lost: bool = False

    def progress_snapshot(self) -> tuple[int, dict[str, Any]]:
        """One model call is the unit of work: there is no progress to publish."""
        return 0, {}


class LlmLane:
    """Claims ``llm.job`` rows (all enabled interrogations, or the ones named) and runs them."""

    def __init__(self, runtime: LlmRuntime, queue: LlmQueue, interrogations: Sequence[str] | None = None) -> None:
        self.runtime = runtime
        self._queue = queue
        self.runner = LlmRunner(runtime, queue)
        self.requested = interrogations
        self.types: list[str] = []

    @property
    def queue(self) -> Queue[Any]:
        return self._queue

    def start(self, worker: Worker) -> str:
        registry = self._queue.registry
        types = list(self.requested) if self.requested is not None else registry.keys()
        for key in types:
            registry.get(key)  # an unknown or disabled interrogation fails here, before any claim
        self.types = types
        swept = sweep_orphan_artifacts(self.runtime.db, self.runtime.settings.resolved_lake_dir)
        if swept:
            log.info("removed the lake files of %d runs that never committed: %s", len(swept), swept[:5])
        # The model is not probed here: a worker starts while its chat server is still coming up.
        return f"llm interrogations {','.join(types)}, chat provider {self.runtime.settings.chat_provider}"

    def claim(self, worker_id: str, lease_seconds: float) -> LlmJob | None:
        return self._queue.claim(worker_id, lease_seconds=lease_seconds, types=self.types)

    def job_type(self, job: Any) -> str:
        return str(job.interrogation_key)

    def execute(self, worker: Worker, job: Any, worker_id: str, heartbeater: Heartbeater) -> None:
        started = time.perf_counter()
        ctx = LlmJobContext(job=job, queue=self._queue)
        heartbeater.add(ctx)
        try:
            if job.attempt_count > 1:  # an earlier attempt's worker may have died between its files and its commit
                with self.runtime.db.read() as tx:
                    earlier = llm_run_ids(tx, job.job_id)
                sweep_orphan_artifacts(self.runtime.db, self.runtime.settings.resolved_lake_dir, earlier)
            job_input = job.parsed_input()
            run_id = start_llm_run(
                self.runtime.db,
                job_id=job.job_id,
                interrogation_key=job.interrogation_key,
                interrogation_version=job_input.version,
                worker_id=worker_id,
                options={"attempt": job.attempt_count, "max_attempts": job.max_attempts, "input": job.input},
            )
            with log_context(job_id=job.job_id, job_type=job.interrogation_key, worker_id=worker_id, run_id=run_id):
                self._run(worker, ctx, run_id, started, heartbeater)
        finally:
            heartbeater.remove(ctx)

    def _run(self, worker: Worker, ctx: LlmJobContext, run_id: str, started: float, heartbeater: Heartbeater) -> None:
        job = ctx.job
        key = job.interrogation_key
        try:
            outcome = self.runner.run(
                job, run_id, checkpoint=lambda: interrupt_if(ctx.lease_lost, worker.stop_requested())
            )
        except JobInterruptedError as exc:
            heartbeater.settle(ctx)
            self._close(run_id, f"interrupted: {exc.reason}")
            if not (exc.lease_lost or ctx.lease_lost) and self._queue.release(job):
                worker.record(key, "released", started)
                log.info("llm job %s %s released: %s", job.job_id, key, exc.reason)
            else:
                worker.record(key, "lost", started)
            return
        except LeaseLostError as exc:
            worker.record(key, "lost", started)
            log.warning("llm job %s %s: %s; its answer was discarded", job.job_id, key, exc)
            self._close(run_id, f"discarded: {exc}")
            return
        except Exception as exc:
            heartbeater.settle(ctx)
            message = f"{type(exc).__name__}: {exc}"
            permanent = isinstance(exc, (PermanentJobError, InvalidPayloadError, InterrogationError))
            log.error(
                "llm job %s %s attempt %d failed: %s",
                job.job_id,
                key,
                job.attempt_count,
                message,
                exc_info=exc,
                extra={"with_traceback": True},
            )
            with self.runtime.db.write() as tx:
                finish_llm_run_in(tx, run_id, status="FAILED", model={}, metrics={}, error=message)
                failed = self._queue.fail_in(tx, job, message, permanent=permanent)
            if failed is None:
                worker.record(key, "lost", started)
            else:
                worker.record(key, "deadlettered" if failed.status is JobStatus.DEADLETTER else "failed", started)
            return
        heartbeater.settle(ctx)
        if outcome.status == "SUCCEEDED":
            worker.record(key, "succeeded", started)
            log.info("llm job %s %s answered in %.2fs (run %s)", job.job_id, key, time.perf_counter() - started, run_id)
        else:
            worker.record(key, "deadlettered", started)
            log.warning("llm job %s %s dead-lettered: %s (run %s)", job.job_id, key, outcome.error, run_id)

    def _close(self, run_id: str, error: str) -> None:
        with self.runtime.db.write() as tx:
            finish_llm_run_in(tx, run_id, status="FAILED", model={}, metrics={}, error=error)
