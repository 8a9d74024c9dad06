"""No-op worker processes for the queue benchmarks (`job_queue.py`, `postgres.py`): the claim path, nothing else.

Run as a script, it is one such worker: `noop_workers.py URL HOME WORKER_ID GO_FILE`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def noop(_ctx: Any, _payload: Any) -> Mapping[str, Any]:
    return {}


def noop_space(db: Any) -> int:
    """A space no model serves, so that no real job type can run in it by accident."""
    from holocron.embedding.base import ModelIdentity
    from holocron.store.spaces import get_or_create_space

    space, _ = get_or_create_space(db, ModelIdentity("bench", "noop", "bench", "sha256:bench", 4, None, True))
    return space.embedding_space_id


def seed_noop_jobs(db: Any, jobs: int) -> int:
    """Enqueue ``jobs`` RETRIEVE_TEST jobs in the no-op space; returns the space id."""
    from holocron.jobs import JobQueue, JobType, NewJob

    space_id = noop_space(db)
    queue = JobQueue(db)
    for start in range(0, jobs, 500):
        queue.enqueue_many(
            [
                NewJob(JobType.RETRIEVE_TEST, {"space_id": space_id, "queries": [f"query {i}"]})
                for i in range(start, min(jobs, start + 500))
            ]
        )
    return space_id


def start_noop_workers(url: str, home: str, processes: int, go_file: Path) -> list[subprocess.Popen[str]]:
    """Start the workers and wait until each is ready; they begin together when ``go_file`` appears."""
    children = [
        subprocess.Popen(
            [sys.executable, __file__, url, home, f"bench-{i}", str(go_file)], stdout=subprocess.PIPE, text=True
        )
        for i in range(processes)
    ]
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker did not start: {line!r}")
    return children


def run_noop_worker(url: str, home: str, worker_id: str, go_file: str) -> None:
    """One worker process: get ready, wait for the common start, drain the queue with no-op handlers."""
    from holocron.config import Settings
    from holocron.jobs import JobType, Worker, WorkerOptions
    from holocron.service import Holocron

    with Holocron(Settings(database_url=url, home=Path(home))) as holo:  # type: ignore[call-arg]
        space_id = noop_space(holo.db)
        options = WorkerOptions(worker_id=worker_id, spaces=[space_id], drain=True, min_idle_seconds=0.01)
        worker = Worker(holo, options, handlers=dict.fromkeys(JobType, noop))
        print("ready", flush=True)
        while not Path(go_file).exists():
            time.sleep(0.002)
        report = worker.run()
    print(f"done {report.succeeded}", flush=True)


if __name__ == "__main__":
    run_noop_worker(*sys.argv[1:5])
