"""The worker: claim a job, run it under a heartbeat, record the run, complete or fail it; repeat.

Design choices, and why:

- **Concurrency is threads in one process** (``concurrency=N``). The expensive step of every job is the model
  call, which either runs in native code that releases the GIL (torch, itself multi-threaded) or waits on HTTP
  (Ollama, OpenAI-compatible servers); threads overlap those, share one loaded model and one connection pool.
  Processes would load one model copy each. For CPU-bound parallelism on several cores, or for isolation, run
  several ``holocron worker`` processes: the queue is built for that (atomic claims, leases).
- **One heartbeat thread per worker** extends the leases of every job it is running, every third of the lease,
  in one statement (one slow renewal cannot starve the others), and publishes their progress. Each renewal
  waits at most half an interval for the database's locks, so a blocked one fails fast and the next comes well
  before the leases run out. When a heartbeat finds a job gone (reclaimed, claimed again or cancelled) its
  handler is interrupted at its next checkpoint and its result is never written.
- **The same thread sweeps** expired leases (and runs left open by dead processes) every interval, so a dead
  worker's job is back in the queue within about a lease even while every slot of every worker is busy.
- **Threads for torch.** Torch's thread pool belongs to the process, so it is set once per process, never per
  slot. The local provider runs one model call at a time (its lock), so that one call gets every core the
  process may use; ``--concurrency`` slots overlap the rest of their work (reads, writes, HTTP) around it.
- **Failures are logged with their traceback** (level ERROR, once per failed attempt), in the text and the
  JSON log format alike.
- **Stopping is graceful.** SIGINT or SIGTERM stops claiming; a running job is interrupted at its next
  checkpoint (between batches: what it wrote is kept, every handler is idempotent) and released back to the
  queue without spending an attempt; a job with no checkpoint left finishes. Nothing is left in RUNNING.
- **Idle workers back off** from ``min_idle_seconds`` doubling to ``poll_seconds`` (default 1 s) while the
  queue is empty, and try again at once after every job, so new work is picked up within a poll interval.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from types import FrameType
from typing import Any, Protocol

from holocron.config import DEFAULT_LEASE_SECONDS
from holocron.jobs.handlers import default_registry
from holocron.jobs.models import InvalidPayloadError, Job, JobStatus, JobType, PermanentJobError, QueuedJob
from holocron.jobs.notify import JobWaiter
from holocron.jobs.queue import Beat, ClaimedJob, JobQueue, Queue, validate_payload
from holocron.jobs.registry import Handler, JobContext, JobInterruptedError, JobRegistry, Runtime
from holocron.observability.logs import log_context
from holocron.observability.metrics import (
    record_job_claimed,
    record_job_deadletter,
    record_job_finished,
    record_job_retry,
)
from holocron.store.runs import close_expired_runs, finish_run, start_run
from holocron.store.spaces import EmbeddingSpace, get_space

log = logging.getLogger("holocron.jobs.worker")


def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in ``jobs list``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


@dataclass
class WorkerOptions:
    worker_id: str = field(default_factory=default_worker_id)
    types: Sequence[JobType] | None = None
    """Job types to run; None: all registered types."""
    spaces: Sequence[int] | None = None
    """Embedding spaces served; None: the space of the configured model."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    heartbeat_seconds: float | None = None
    """Default: a third of the lease. Also how often the worker sweeps expired leases."""
    poll_seconds: float = 1.0
    min_idle_seconds: float = 0.05
    concurrency: int = 1
    drain: bool = False
    """Exit once nothing is ready (``--once``) instead of waiting for more (``--loop``)."""
    max_jobs: int | None = None
    handle_signals: bool = True


@dataclass
class WorkerReport:
    worker_id: str
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    deadlettered: int = 0
    released: int = 0
    lost: int = 0
    seconds: float = 0.0
    stop_reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every field, and a lock cannot be copied.
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def torch_threads_for_process() -> int:
    """Torch threads for this process: the cores it may run on (its affinity), at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def fit_torch_threads(provider: object) -> int | None:
    """Give a local model the process's cores, once; returns the threads (None: not a local model).

    Set here, before the slots start, for the model's load, or at once when the model is loaded already; the
    provider's lock runs one model call at a time, so no two calls compete for the cores.
    """
    from holocron.embedding.local import LocalProvider

    if not isinstance(provider, LocalProvider):
        return None
    threads = torch_threads_for_process()
    provider.threads = threads
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threads


@contextmanager
def stop_signals(on_signal: Callable[[str], None], *, enabled: bool = True) -> Iterator[None]:
    """Call ``on_signal`` with the signal's name on SIGINT and SIGTERM while inside (a graceful stop: the caller
    stops claiming and lets what runs finish); the previous handlers come back after. Only the main thread can
    take signals: elsewhere, or with ``enabled`` false, nothing is installed."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        on_signal(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, former in previous.items():
            signal.signal(sig, former)


class Tracked(Protocol):
    """A running job as the heartbeat sees it: its claim, its queue, its progress, and a flag to raise."""

    @property
    def job(self) -> ClaimedJob: ...

    @property
    def queue(self) -> Queue[Any]: ...

    lease_lost: bool

    def progress_snapshot(self) -> tuple[int, dict[str, Any]]: ...


class Heartbeater:
    """One thread that keeps the leases of all running jobs of this worker alive (one statement per queue),
    and sweeps expired ones."""

    def __init__(self, queues: Sequence[Queue[Any]], lease_seconds: float, interval: float) -> None:
        self.queues = list(queues)
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.timeout_s = max(0.05, interval / 2)
        """How long one renewal (or sweep) may wait for the database's locks: half an interval, so the next
        renewal is still on time."""
        self._active: dict[tuple[str, int], tuple[Tracked, int]] = {}
        self._settling: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holocron-heartbeat", daemon=True)

    @staticmethod
    def _key(ctx: Tracked) -> tuple[str, int]:
        return ctx.queue.name, ctx.job.job_id

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def add(self, ctx: Tracked) -> None:
        with self._lock:
            self._active[self._key(ctx)] = (ctx, 0)

    def settle(self, ctx: Tracked) -> None:
        """The job's outcome is being written: keep its lease, but leave reporting a loss to that write."""
        with self._lock:
            self._settling.add(self._key(ctx))

    def remove(self, ctx: Tracked) -> None:
        with self._lock:
            self._active.pop(self._key(ctx), None)
            self._settling.discard(self._key(ctx))

    def _run(self) -> None:
        # A fixed cadence: a slow beat does not push the next one later (it comes at once if it is due).
        due = time.monotonic() + self.interval
        while not self._done.wait(max(0.0, due - time.monotonic())):
            self.beat()
            self.sweep()
            due = max(due + self.interval, time.monotonic())

    def beat(self) -> None:
        """Renew every running job's lease, one statement per queue, and publish the progress that changed."""
        with self._lock:
            active = list(self._active.items())
        by_queue: dict[str, list[tuple[tuple[str, int], Tracked, int]]] = {}
        for key, (ctx, sent) in active:
            by_queue.setdefault(key[0], []).append((key, ctx, sent))
        for entries in by_queue.values():
            self._beat(entries)

    def _beat(self, entries: list[tuple[tuple[str, int], Tracked, int]]) -> None:
        queue = entries[0][1].queue
        beats: list[Beat] = []
        versions: dict[tuple[str, int], int] = {}
        for key, ctx, sent in entries:
            version, progress = ctx.progress_snapshot()
            beats.append(Beat(ctx.job, progress if version != sent else None))
            versions[key] = version
        try:
            alive = queue.heartbeat_many(beats, lease_seconds=self.lease_seconds, timeout_s=self.timeout_s)
        except Exception:  # a busy or unreachable database: try again next beat, the lease has slack
            log.warning("heartbeat for %s jobs %s failed", queue.name, sorted(k[1] for k in versions), exc_info=True)
            return
        with self._lock:
            for key, ctx, _ in entries:
                if key not in self._active:
                    continue  # finished meanwhile
                if key[1] not in alive and key not in self._settling:
                    log.warning(
                        "%s job %s: lease lost (reclaimed, claimed again or cancelled); stopping it", key[0], key[1]
                    )
                    ctx.lease_lost = True
                self._active[key] = (ctx, versions[key])

    def sweep(self) -> None:
        """Put jobs whose lease expired back in their queues, as claims do (also while every slot is busy), and
        close the runs that dead processes left RUNNING."""
        try:
            with self.queues[0].db.write(timeout_s=self.timeout_s) as tx:
                reclaimed = [queue.reclaim_in(tx) for queue in self.queues]
                closed = close_expired_runs(tx)
        except Exception:  # the next sweep, or any claim, does it
            log.debug("reclaim sweep failed", exc_info=True)
            return
        for queue, swept in zip(self.queues, reclaimed, strict=True):
            if swept:
                log.info(
                    "swept expired %s leases: jobs retried %s, dead-lettered %s",
                    queue.name,
                    swept.retried,
                    swept.deadlettered,
                )
        if closed:
            log.info("%d runs of dead processes closed", closed)


class Lane(Protocol):
    """One queue a worker serves: how to claim from it and how to run what it hands out."""

    @property
    def queue(self) -> Queue[Any]: ...

    def start(self, worker: Worker) -> str:
        """Get ready to serve (resolve spaces, load nothing yet); returns what the log says it serves."""
        ...

    def claim(self, worker_id: str, lease_seconds: float) -> QueuedJob | None: ...

    def job_type(self, job: Any) -> str: ...

    def execute(self, worker: Worker, job: Any, worker_id: str, heartbeater: Heartbeater) -> None:
        """Run a claimed job and record its outcome (or leave its lease to expire if recording fails)."""
        ...


class VectorLane:
    """``vector.job``: the registry's handlers, routed by embedding space."""

    def __init__(self, queue: JobQueue, types: Sequence[JobType] | None, spaces: Sequence[int] | None) -> None:
        self._queue = queue
        self.requested_types = types
        self.requested_spaces = spaces
        self.types: list[JobType] = []
        self.spaces: list[int] = []

    @property
    def queue(self) -> Queue[Any]:
        return self._queue

    def start(self, worker: Worker) -> str:
        types = list(self.requested_types) if self.requested_types is not None else worker.registry.types()
        unknown = [t for t in types if t not in worker.registry]
        if unknown:
            raise ValueError(f"no handler for {', '.join(unknown)}")
        self.types = types
        self.spaces = (
            list(self.requested_spaces) if self.requested_spaces is not None else [worker.holo.space.embedding_space_id]
        )
        torch_threads = fit_torch_threads(worker.holo.provider)
        threads = f", torch threads {torch_threads}" if torch_threads is not None else ""
        return f"vector types {','.join(types)}, spaces {self.spaces}{threads}"

    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        return self._queue.claim(worker_id, lease_seconds=lease_seconds, types=self.types, spaces=self.spaces)

    def job_type(self, job: Any) -> str:
        return str(job.job_type)

    def execute(self, worker: Worker, job: Any, worker_id: str, heartbeater: Heartbeater) -> None:
        worker._execute(job, worker_id, heartbeater)


class Worker:
    """Runs jobs from its queues until stopped (or, with ``drain``, until nothing is ready).

    ``lanes`` are the queues served, in the order each slot tries them (default: ``vector.job`` only).

    ``handlers`` replaces the handlers of some job types (benchmarks and tests run no-op jobs this way); the
    payload schemas stay the real ones.
    """

    def __init__(
        self,
        holo: Runtime,
        options: WorkerOptions | None = None,
        *,
        handlers: Mapping[JobType, Handler] | None = None,
        registry: JobRegistry | None = None,
        queue: JobQueue | None = None,
        lanes: Sequence[Lane] | None = None,
    ) -> None:
        self.holo = holo
        self.options = options or WorkerOptions()
        if self.options.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.options.lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if self.options.heartbeat_seconds is not None and self.options.heartbeat_seconds <= 0:
            raise ValueError("heartbeat_seconds must be positive")
        base = registry or default_registry()
        self.registry = base.with_handlers(handlers) if handlers else base
        self.queue = queue or JobQueue(holo.db)
        self.lanes: list[Lane] = (
            list(lanes) if lanes is not None else [VectorLane(self.queue, self.options.types, self.options.spaces)]
        )
        if not self.lanes:
            raise ValueError("a worker needs at least one queue to serve")
        self.report = WorkerReport(self.options.worker_id)
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._lock = threading.Lock()
        self._busy = 0  # slots claiming or running a job (drain mode exits when none is)
        self._drained = False
        self._reserved = 0  # claims started, for max_jobs
        self._spaces: dict[int, EmbeddingSpace] = {}
        self._waiter = JobWaiter(holo.db)  # idle slots wake on NOTIFY (PostgreSQL) or sleep (SQLite)

    # -- control ----------------------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Stop claiming; running jobs stop at their next checkpoint and are released. Safe from any thread."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop_requested(self) -> str | None:
        """Why the worker is stopping, or None: what a running job's checkpoint looks at."""
        return self._stop_reason if self._stop.is_set() else None

    @contextmanager
    def _signals(self) -> Iterator[None]:
        def on_signal(name: str) -> None:
            if self.stopping:
                log.warning("%s again: already stopping (the current job is released at its next checkpoint)", name)
            else:
                log.warning("%s: stopping after releasing or finishing the current job", name)
            self.stop(f"worker received {name}")

        with stop_signals(on_signal, enabled=self.options.handle_signals):
            yield

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> WorkerReport:
        started = time.perf_counter()
        opts = self.options
        served = [lane.start(self) for lane in self.lanes]
        interval = opts.heartbeat_seconds or opts.lease_seconds / 3
        heartbeater = Heartbeater([lane.queue for lane in self.lanes], opts.lease_seconds, interval)
        heartbeater.start()
        log.info(
            "worker %s: %s; lease %.0fs, heartbeat every %.1fs, concurrency %d",
            opts.worker_id,
            "; ".join(served),
            opts.lease_seconds,
            interval,
            opts.concurrency,
        )
        try:
            with self._signals():
                if opts.concurrency == 1:
                    self._slot(opts.worker_id, heartbeater)
                else:
                    threads = [
                        threading.Thread(
                            target=self._slot,
                            args=(f"{opts.worker_id}/{i}", heartbeater),
                            name=f"holocron-worker-{i}",
                            daemon=True,
                        )
                        for i in range(opts.concurrency)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        while thread.is_alive():
                            thread.join(timeout=0.5)  # short joins keep the main thread free for signals
        finally:
            heartbeater.close()
            self._waiter.close()
        self.report.seconds = time.perf_counter() - started
        self.report.stop_reason = self._stop_reason or ("drained" if opts.drain else None)
        return self.report

    def _claim(self, worker_id: str) -> tuple[Lane, Any] | None:
        """The next job of the first lane that has one."""
        for lane in self.lanes:
            job = lane.claim(worker_id, self.options.lease_seconds)
            if job is not None:
                return lane, job
        return None

    def _slot(self, worker_id: str, heartbeater: Heartbeater) -> None:
        opts = self.options
        idle = opts.min_idle_seconds
        while not self.stopping:
            with self._lock:
                if self._drained:
                    return
                if opts.max_jobs is not None and self._reserved >= opts.max_jobs:
                    return
                self._reserved += 1
                self._busy += 1
            try:
                claimed = self._claim(worker_id)
            except Exception:
                log.warning("claim failed; retrying in %.1fs", opts.poll_seconds, exc_info=True)
                claimed = None
                self._stop.wait(opts.poll_seconds)
            if claimed is None:
                with self._lock:
                    self._reserved -= 1
                    self._busy -= 1
                    if opts.drain and self._busy == 0:
                        self._drained = True
                        return
                self._waiter.wait(idle, stop=self._stop)
                idle = min(idle * 2, opts.poll_seconds)
                continue
            lane, job = claimed
            idle = opts.min_idle_seconds
            self.report.add("claimed")
            record_job_claimed(lane.job_type(job))
            try:
                lane.execute(self, job, worker_id, heartbeater)
            except Exception:
                # Recording the outcome failed (the database went away): the lease will expire and the job
                # runs again elsewhere; this slot carries on.
                log.exception("%s job %s: could not record its outcome", lane.queue.name, job.job_id)
                self._stop.wait(opts.poll_seconds)
            finally:
                with self._lock:
                    self._busy -= 1

    def _space(self, space_id: int | None) -> EmbeddingSpace | None:
        if space_id is None:
            return None
        if space_id not in self._spaces:
            with self.holo.db.read() as tx:
                found = get_space(tx, space_id)
            if found is None:
                return None
            self._spaces[space_id] = found
        return self._spaces[space_id]

    def record(self, job_type: str, outcome: str, started: float) -> None:
        """Count the outcome for the worker's report and for Prometheus."""
        self.report.add(outcome)
        record_job_finished(job_type, outcome, time.perf_counter() - started)
        if outcome == "failed":
            record_job_retry(job_type)
        elif outcome == "deadlettered":
            record_job_deadletter(job_type)

    def _record(self, job: Job, outcome: str, started: float) -> None:
        self.record(job.job_type.value, outcome, started)

    def _execute(self, job: Job, worker_id: str, heartbeater: Heartbeater) -> None:
        started = time.perf_counter()
        space = self._space(job.embedding_space_id)
        ctx = JobContext(
            holo=self.holo,
            queue=self.queue,
            job=job,
            run_id="",
            worker_id=worker_id,
            stop_requested=self.stop_requested,
            _spaces=self._spaces,
        )
        # The lease is renewed from the claim until the outcome is written, however long a write waits for a lock.
        heartbeater.add(ctx)
        try:
            ctx.run_id = start_run(
                self.holo.db,
                job.job_type.value,
                options={
                    "job_type": job.job_type.value,
                    "attempt": job.attempt_count,
                    "max_attempts": job.max_attempts,
                    "priority": job.priority,
                    "lease_seconds": self.options.lease_seconds,
                    "input": job.input,
                },
                space=space,
                job_id=job.job_id,
                worker_id=worker_id,
            )
            with log_context(
                job_id=job.job_id,
                job_type=job.job_type.value,
                worker_id=worker_id,
                run_id=ctx.run_id,
                space=space.name if space else None,
            ):
                self._run(ctx, started, heartbeater)
        finally:
            heartbeater.remove(ctx)

    def _run(self, ctx: JobContext, started: float, heartbeater: Heartbeater) -> None:
        """Run the handler and record its outcome: the run first, then the job."""
        job, run_id = ctx.job, ctx.run_id
        wait = (job.locked_utc - job.available_utc).total_seconds() if job.locked_utc else None

        def metrics(**more: Any) -> dict[str, Any]:
            return {
                **ctx.metrics,
                "job_id": job.job_id,
                "attempt": job.attempt_count,
                "job_seconds": round(time.perf_counter() - started, 4),
                "queue_wait_seconds": round(wait, 4) if wait is not None else None,
                **more,
            }

        try:
            payload = validate_payload(job.job_type, job.input)
            result = dict(self.registry.spec(job.job_type).handler(ctx, payload))
        except JobInterruptedError as exc:
            heartbeater.settle(ctx)
            finish_run(self.holo.db, run_id, metrics=metrics(interrupted=True), error=f"interrupted: {exc.reason}")
            if exc.lease_lost or ctx.lease_lost:
                self._record(job, "lost", started)
                log.warning("job %s %s abandoned: %s", job.job_id, job.job_type, exc.reason)
            elif self.queue.release(job):
                self._record(job, "released", started)
                log.info("job %s %s released: %s", job.job_id, job.job_type, exc.reason)
            else:
                self._record(job, "lost", started)
            return
        except Exception as exc:
            heartbeater.settle(ctx)
            message = f"{type(exc).__name__}: {exc}"
            permanent = isinstance(exc, (PermanentJobError, InvalidPayloadError))
            # Once per failed attempt, with the traceback, at a level every log configuration shows.
            log.error(
                "job %s %s attempt %d failed: %s",
                job.job_id,
                job.job_type,
                job.attempt_count,
                message,
                exc_info=exc,
                extra={"with_traceback": True},
            )
            finish_run(self.holo.db, run_id, metrics=metrics(), error=message)
            outcome = self.queue.fail(job, message, permanent=permanent)
            if outcome is None:
                self._record(job, "lost", started)
            elif outcome.status is JobStatus.DEADLETTER:
                self._record(job, "deadlettered", started)
            else:
                self._record(job, "failed", started)
            return
        except BaseException:
            # Not ours to swallow (an interpreter exit): give the job back first so it is not stuck in RUNNING.
            heartbeater.settle(ctx)
            finish_run(self.holo.db, run_id, metrics=metrics(interrupted=True), error="worker exiting")
            self.queue.release(job)
            raise
        heartbeater.settle(ctx)
        # The run is finished before the job: a crash in between re-runs an idempotent job, never the reverse
        # (a SUCCEEDED job whose run stays RUNNING forever).
        finish_run(self.holo.db, run_id, metrics=metrics(), error=None)
        if self.queue.succeed(job, {**result, "run_id": run_id}):
            self._record(job, "succeeded", started)
            log.info(
                "job %s %s succeeded in %.2fs (run %s)",
                job.job_id,
                job.job_type,
                time.perf_counter() - started,
                run_id,
            )
        else:
            self._record(job, "lost", started)
            log.warning("job %s %s finished after losing its lease; its result was discarded", job.job_id, job.job_type)


def run_worker(
    holo: Runtime,
    options: WorkerOptions,
    *,
    handlers: Mapping[JobType, Handler] | None = None,
    lanes: Sequence[Lane] | None = None,
) -> WorkerReport:
    """Build a :class:`Worker` and run it (the CLI's entry point)."""
    return Worker(holo, options, handlers=handlers, lanes=lanes).run()
