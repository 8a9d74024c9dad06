"""Run lineage: every execution that writes chunks or embeddings leaves a ``vector.run`` row."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from holocron.store.database import Database, Tx
from holocron.store.spaces import EmbeddingSpace
from holocron.store.types import db_now, utcnow

RUN_LEASE = timedelta(seconds=60)
"""How long a run stays RUNNING without a sign of life; :func:`keep_alive` renews it every third of that."""

HOST = socket.gethostname()[:200]


def start_run(
    db: Database,
    run_type: str,
    *,
    options: dict[str, Any],
    space: EmbeddingSpace | None = None,
    job_id: int | None = None,
    worker_id: str | None = None,
) -> str:
    run_id = str(uuid.uuid4())
    with db.write() as tx:
        tx.execute(
            tx.t.run.insert().values(
                run_id=run_id,
                job_id=job_id,
                run_type=run_type,
                worker_id=worker_id,
                status="RUNNING",
                embedding_space_id=space.embedding_space_id if space else None,
                endpoint_url=space.endpoint_url if space else None,
                model_name=space.model_name if space else None,
                model_tag=space.model_tag if space else None,
                model_digest=space.model_digest if space else None,
                options_json=options,
                metrics_json={},
                started_utc=utcnow(),
                host=HOST,
                pid=os.getpid(),
                # A job's run lives as long as the job's own lease (see close_expired_runs); others renew theirs.
                lease_expires_utc=None if job_id is not None else db_now(RUN_LEASE.total_seconds()),
            )
        )
    return run_id


def renew_run(db: Database, run_id: str) -> bool:
    """Push a running run's lease forward; False when it is no longer RUNNING."""
    with db.write() as tx:
        table = tx.t.run
        done = tx.execute(
            update(table)
            .where(table.c.run_id == run_id, table.c.status == "RUNNING")
            .values(lease_expires_utc=db_now(RUN_LEASE.total_seconds()))
        )
    return bool(done.rowcount)


@contextmanager
def keep_alive(db: Database, run_id: str) -> Iterator[None]:
    """Renew the run's lease from a background thread while the block runs, so a run whose process dies
    (SIGKILL, power loss) is closed as FAILED by the next :func:`close_expired_runs` instead of staying RUNNING."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(RUN_LEASE.total_seconds() / 3):
            try:
                renew_run(db, run_id)
            except Exception:  # a busy database: the next beat tries again, well within the lease
                continue

    thread = threading.Thread(target=beat, name=f"run-lease-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def close_expired_runs(tx: Tx) -> int:
    """Close as FAILED every RUNNING run whose process is gone. Returns how many were closed.

    A run is dead when its lease ran out, when its process on this host no longer exists, or (a job's run)
    when its job has been claimed again or finished since the run started.
    """
    run, job = tx.t.run, tx.t.job
    now = utcnow()
    closed = 0
    expired = tx.execute(
        update(run)
        .where(run.c.status == "RUNNING", run.c.lease_expires_utc.is_not(None), run.c.lease_expires_utc < db_now())
        .values(status="FAILED", error="the run stopped without finishing (its lease expired)", completed_utc=now)
    )
    closed += expired.rowcount or 0
    local = tx.execute(
        select(run.c.run_id, run.c.pid).where(
            run.c.status == "RUNNING", run.c.host == HOST, run.c.pid.is_not(None), run.c.pid != os.getpid()
        )
    ).all()
    dead = [row.run_id for row in local if not process_alive(int(row.pid))]
    if dead:
        closed += (
            tx.execute(
                update(run)
                .where(run.c.run_id.in_(dead), run.c.status == "RUNNING")
                .values(status="FAILED", error=f"its process on {HOST} has exited", completed_utc=now)
            ).rowcount
            or 0
        )
    job_runs = tx.execute(
        select(run.c.run_id, run.c.options_json, job.c.status, job.c.attempt_count)
        .join(job, job.c.job_id == run.c.job_id)
        .where(run.c.status == "RUNNING")
    ).all()
    orphaned = [
        row.run_id
        for row in job_runs
        if row.status != "RUNNING" or (row.options_json or {}).get("attempt", row.attempt_count) != row.attempt_count
    ]
    if orphaned:
        closed += (
            tx.execute(
                update(run)
                .where(run.c.run_id.in_(orphaned), run.c.status == "RUNNING")
                .values(status="FAILED", error="its job was claimed again or finished without it", completed_utc=now)
            ).rowcount
            or 0
        )
    return closed


def finish_run(db: Database, run_id: str, *, metrics: dict[str, Any], error: str | None = None) -> None:
    with db.write() as tx:
        tx.execute(
            update(tx.t.run)
            .where(tx.t.run.c.run_id == run_id)
            .values(
                lease_expires_utc=None,
                status="FAILED" if error else "SUCCEEDED",
                metrics_json=metrics,
                error=error,
                completed_utc=utcnow(),
            )
        )


def get_run(tx: Tx, run_id: str) -> dict[str, Any] | None:
    row = tx.execute(select(tx.t.run).where(tx.t.run.c.run_id == run_id)).first()
    return dict(row._mapping) if row else None


def list_runs(tx: Tx, *, limit: int = 50, offset: int = 0, job_id: int | None = None) -> list[dict[str, Any]]:
    table = tx.t.run
    query = select(table).order_by(table.c.started_utc.desc()).limit(limit).offset(offset)
    if job_id is not None:
        query = query.where(table.c.job_id == job_id)
    return [dict(row._mapping) for row in tx.execute(query)]


def count_runs(tx: Tx, *, job_id: int | None = None) -> int:
    table = tx.t.run
    query = select(func.count()).select_from(table)
    if job_id is not None:
        query = query.where(table.c.job_id == job_id)
    return int(tx.execute(query).scalar_one())


def run_artifacts(tx: Tx, run_id: str) -> list[dict[str, Any]]:
    table = tx.t.run_artifact
    rows = tx.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.artifact_id))
    return [dict(row._mapping) for row in rows]
