"""Several ``holocron worker`` processes on one database, one of them killed with SIGKILL in the middle of an
EMBED_CHUNKS job and another stopped with SIGTERM in the middle of one.

Afterwards every job has SUCCEEDED (or is DEADLETTER with a reason), every chunk has exactly one embedding,
every row is whole and names the run that wrote it, no job or run is left RUNNING, and the SIGTERM'd worker
exited cleanly. Embedding is slowed by a second per call (inside the worker processes only) so that a job is
reliably in flight when the signals arrive; nothing depends on how fast the machine is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

import pytest
from sqlalchemy import func, select

from datafiles import data_file
from holocron.config import Settings
from holocron.service import Holocron
from holocron.store.database import Database
from holocron.vectors import vector_sha256

LEASE_SECONDS = 3
WORKERS = 3
T = TypeVar("T")

pytestmark = pytest.mark.model

# The CLI entry point with the model slowed down: a test-only wrapper, run as each worker process.
RUNNER = """
import os, sys, time
from holocron.embedding.local import LocalProvider

_delay = float(os.environ["HOLOCRON_TEST_EMBED_DELAY"])
_embed = LocalProvider.embed

def _slow_embed(self, texts, *args, **kwargs):
    time.sleep(_delay)
    return _embed(self, texts, *args, **kwargs)

LocalProvider.embed = _slow_embed
from holocron.cli.app import main

sys.argv = ["holocron", *sys.argv[1:]]
main()
"""


@pytest.fixture(params=["sqlite"])
def worker_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database the worker processes share; a PostgreSQL variant is a new parameter here."""
    yield f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture()
def engine_checks() -> Callable[[Database], None]:
    """Checks that only one engine's variant adds, run by the test after its own (nothing on SQLite)."""
    return lambda db: None


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(data_file("wiki-html/trafilatura__stardewvalleywiki.com.penny.html"), folder / "penny.html")
    shutil.copy(data_file("openalex/papers__work.json"), folder / "work.json")
    return folder


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_worker(
    runner: Path, url: str, home: Path, worker_id: str, logs: Path, *, lease_seconds: float | None = LEASE_SECONDS
) -> subprocess.Popen[bytes]:
    """A ``holocron worker --loop`` process; ``lease_seconds=None`` runs it with the default lease."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "HOLOCRON_LEASE_SECONDS"},
        "HOLOCRON_EMBED_BATCH_SIZE": "4",
        "HOLOCRON_TEST_EMBED_DELAY": "1.0",
        "HOLOCRON_LOG_LEVEL": "INFO",
    }
    lease = ["--lease-seconds", str(lease_seconds)] if lease_seconds is not None else []
    command = [
        sys.executable,
        str(runner),
        "--database-url",
        url,
        "--home",
        str(home),
        "worker",
        "--loop",
        "--worker-id",
        worker_id,
        *lease,
        "--poll-seconds",
        "0.5",
    ]
    log = (logs / f"{worker_id}.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def embed_job_held_by(db: Database, workers: set[str]) -> tuple[int, str] | None:
    """A RUNNING EMBED_CHUNKS job whose owner is one of ``workers`` and has started its run: (job id, worker id).

    The run row is what proves the worker is inside the job; a claim alone is committed a moment earlier.
    """
    with db.read() as tx:
        j, r = tx.t.job, tx.t.run
        row = tx.execute(
            select(j.c.job_id, j.c.locked_by)
            .join(r, (r.c.job_id == j.c.job_id) & (r.c.worker_id == j.c.locked_by) & (r.c.status == "RUNNING"))
            .where(j.c.job_type == "EMBED_CHUNKS", j.c.status == "RUNNING", j.c.locked_by.in_(sorted(workers)))
        ).first()
    return (int(row.job_id), str(row.locked_by)) if row else None


def all_finished(db: Database) -> bool:
    with db.read() as tx:
        j = tx.t.job
        statuses = [s for (s,) in tx.execute(select(j.c.status))]
        has_embed = tx.execute(select(func.count()).where(j.c.job_type == "EMBED_CHUNKS")).scalar_one()
    return bool(has_embed) and all(s in ("SUCCEEDED", "DEADLETTER") for s in statuses)


def logs_of(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))


def test_killed_and_stopped_workers_leave_a_whole_index(
    worker_db_url: str, corpus: Path, tmp_path: Path, engine_checks: Callable[[Database], None]
) -> None:
    home = tmp_path / "home"
    logs = tmp_path / "logs"
    logs.mkdir()
    runner = tmp_path / "run_worker.py"
    runner.write_text(RUNNER)
    settings = Settings(database_url=worker_db_url, home=home, embed_batch_size=4)  # type: ignore[call-arg]
    with Holocron(settings) as holo:
        report = holo.ingest([corpus], enqueue=True)
        assert len(report.registered.new) == 2 and report.enqueued
        space = holo.space
    db = Database(worker_db_url)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for i in range(WORKERS):
            procs[f"w{i}"] = start_worker(runner, worker_db_url, home, f"w{i}", logs)

        # SIGKILL a worker while it is inside EMBED_CHUNKS.
        killed_job, victim = wait_for("an EMBED_CHUNKS job in flight", lambda: embed_job_held_by(db, set(procs)), 240)
        procs[victim].send_signal(signal.SIGKILL)
        assert procs[victim].wait(30) == -signal.SIGKILL

        # SIGTERM another while it is inside EMBED_CHUNKS: it must release or finish the job and exit 0.
        alive = {w for w in procs if w != victim}
        stopped_job, stopped = wait_for("another EMBED_CHUNKS job in flight", lambda: embed_job_held_by(db, alive), 240)
        procs[stopped].send_signal(signal.SIGTERM)
        assert procs[stopped].wait(60) == 0, logs_of(logs)
        with db.read() as tx:
            j = tx.t.job
            after_stop = tx.execute(select(j.c.status, j.c.locked_by).where(j.c.job_id == stopped_job)).one()
        assert not (after_stop.status == "RUNNING" and after_stop.locked_by == stopped)

        # The rest finish everything, including the killed worker's job once its lease expires.
        wait_for("every job to finish", lambda: all_finished(db), 300, interval=0.5)
        last = next(w for w in procs if w not in (victim, stopped))
        procs[last].send_signal(signal.SIGTERM)
        assert procs[last].wait(60) == 0, logs_of(logs)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    try:
        check_whole_index(db, space.embedding_space_id, space.dimensions, killed_job, victim)
        engine_checks(db)
    finally:
        db.dispose()


def check_whole_index(db: Database, space_id: int, dimensions: int, killed_job: int, victim: str) -> None:
    t = db.t
    with db.read() as tx:
        jobs = tx.execute(select(t.job)).all()
        runs = {r.run_id: r for r in tx.execute(select(t.run))}
        chunks = tx.execute(select(t.chunk)).all()
        embeddings = tx.execute(select(t.embedding)).all()
        sources = tx.execute(select(t.source_registry.c.status)).scalars().all()
        artifacts = tx.execute(select(t.run_artifact)).all()

    for job in jobs:
        assert job.status == "SUCCEEDED" or (job.status == "DEADLETTER" and job.last_error), dict(job._mapping)
    assert not [r for r in runs.values() if r.status == "RUNNING"]
    killed = next(j for j in jobs if j.job_id == killed_job)
    assert killed.attempt_count >= 2  # it ran again after its worker died
    victim_runs = [r for r in runs.values() if r.job_id == killed_job and r.worker_id == victim]
    # Closed by whoever noticed first: the reclaim of its job's lease, or a sweep that saw its process gone.
    assert victim_runs and victim_runs[0].status == "FAILED"
    assert "lost its lease" in victim_runs[0].error or "has exited" in victim_runs[0].error, victim_runs[0].error

    assert set(sources) == {"indexed"}
    assert chunks and all(c.run_id in runs and runs[c.run_id].run_type == "CHUNK_SOURCE" for c in chunks)
    per_chunk: dict[str, int] = {}
    for e in embeddings:
        assert e.embedding_space_id == space_id
        per_chunk[e.chunk_id] = per_chunk.get(e.chunk_id, 0) + 1
        assert len(e.vector) == dimensions and vector_sha256(e.vector) == e.vector_sha256
        # The run that wrote it: finished, or stopped after this batch was committed (SIGTERM, SIGKILL).
        assert e.run_id in runs and runs[e.run_id].run_type == "EMBED_CHUNKS"
    assert per_chunk == {c.chunk_id: 1 for c in chunks}  # exactly one embedding per chunk

    for artifact in artifacts:
        data = Path(unquote(urlparse(artifact.uri).path)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact.content_sha256
    succeeded_runs = {r.run_id for r in runs.values() if r.status == "SUCCEEDED"}
    assert succeeded_runs <= {a.run_id for a in artifacts}


DEFAULT_LEASE_COMES_BACK_S = 45
"""A killed worker's job must be back in the queue this soon with the default settings: the default lease
(20 s) plus one heartbeat sweep or claim, with room to spare; under the old one-minute lease it could not be."""


def test_a_killed_workers_job_is_back_in_the_queue_within_seconds_by_default(
    worker_db_url: str, corpus: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    logs = tmp_path / "logs"
    logs.mkdir()
    runner = tmp_path / "run_worker.py"
    runner.write_text(RUNNER)
    settings = Settings(database_url=worker_db_url, home=home, embed_batch_size=4)  # type: ignore[call-arg]
    with Holocron(settings) as holo:
        assert holo.ingest([corpus], enqueue=True).enqueued
    db = Database(worker_db_url)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("a", "b"):
            procs[name] = start_worker(runner, worker_db_url, home, name, logs, lease_seconds=None)
        killed_job, victim = wait_for("an EMBED_CHUNKS job in flight", lambda: embed_job_held_by(db, set(procs)), 240)
        procs[victim].send_signal(signal.SIGKILL)
        assert procs[victim].wait(30) == -signal.SIGKILL

        def back_in_the_queue() -> bool:
            with db.read() as tx:
                j = tx.t.job
                job = tx.execute(select(j.c.status, j.c.locked_by).where(j.c.job_id == killed_job)).one()
            return job.status != "RUNNING" or job.locked_by != victim

        wait_for("the killed worker's job to be reclaimed", back_in_the_queue, DEFAULT_LEASE_COMES_BACK_S, interval=0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        db.dispose()
