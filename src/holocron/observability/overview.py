"""One picture of the system, computed from the database: the dashboard, ``holocron status`` and ``/api/status``.

Everything here is read-only and JSON-ready, so that the three views can never disagree about a number.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Table, func, select

from holocron.store.crawl import crawl_overview
from holocron.store.database import Database, Tx
from holocron.store.llm import list_llm_runs, llm_run_counts
from holocron.vocabulary import JOB_STATUSES, JOB_TYPES

WAITING_STATUSES = ("NEW", "FAILED")
RUN_METRIC_KEYS = (
    "sources_chunked",
    "sources_failed",
    "chunks_written",
    "chunks_embedded",
    "embeddings_written",
    "failed_batches",
    "model_calls",
    "seconds",
)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _seconds(started: datetime | None, completed: datetime | None) -> float | None:
    return round((completed - started).total_seconds(), 2) if started and completed else None


def _iso(value: Any) -> str | None:
    parsed = _utc(value)
    return parsed.isoformat() if parsed else None


def compute_overview(
    db: Database,
    *,
    recent_runs: int = 10,
    dead_letters: int = 20,
    bucket_seconds: int = 300,
    buckets: int = 12,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Queue, runs, errors, spaces, sources and throughput, as of ``now``; the LLM queue and runs under ``llm``."""
    now = now or datetime.now(UTC)
    with db.read() as tx:
        vector, llm = tx.t.job, tx.t.llm_job
        return {
            "generated_utc": now.isoformat(),
            "queue": _queue(tx, now, vector, vector.c.job_type, JOB_TYPES),
            "runs": _runs(tx, recent_runs),
            "dead_letters": _problem_jobs(tx, vector, vector.c.job_type, "DEADLETTER", dead_letters),
            "failed_jobs": _problem_jobs(tx, vector, vector.c.job_type, "FAILED", dead_letters),
            "spaces": space_coverage(tx),
            "sources": _sources(tx),
            "throughput": _throughput(tx, now, bucket_seconds, buckets),
            "llm": {
                "queue": _queue(tx, now, llm, llm.c.interrogation_key),
                "runs": _llm_runs(tx, recent_runs),
                "run_counts": llm_run_counts(tx),
                "dead_letters": _problem_jobs(tx, llm, llm.c.interrogation_key, "DEADLETTER", dead_letters),
                "pages_classified": int(tx.execute(select(func.count()).select_from(tx.t.source_page)).scalar_one()),
            },
            "crawl": crawl_overview(tx),
        }


def _queue(tx: Tx, now: datetime, j: Table, type_column: Column[Any], order: tuple[str, ...] = ()) -> dict[str, Any]:
    """One queue's counts by status and by type (``order`` first, the rest by name)."""
    by_status = dict.fromkeys(JOB_STATUSES, 0)
    by_type: dict[str, dict[str, int]] = {}
    for job_type, status, n in tx.execute(
        select(type_column, j.c.status, func.count()).group_by(type_column, j.c.status)
    ):
        by_status[status] = by_status.get(status, 0) + int(n)
        by_type.setdefault(job_type, dict.fromkeys(JOB_STATUSES, 0))[status] = int(n)
    ready, oldest = tx.execute(
        select(func.count(), func.min(j.c.available_utc)).where(
            j.c.status.in_(WAITING_STATUSES), j.c.available_utc <= now
        )
    ).one()
    oldest_dt = _utc(oldest)
    return {
        "by_status": by_status,
        "by_type": {key: by_type[key] for key in [*order, *sorted(set(by_type) - set(order))] if key in by_type},
        "total": sum(by_status.values()),
        "depth": sum(by_status[s] for s in WAITING_STATUSES),
        "available": int(ready),
        "oldest_available_age_s": round((now - oldest_dt).total_seconds(), 1) if oldest_dt else None,
    }


def _runs(tx: Tx, limit: int) -> list[dict[str, Any]]:
    r = tx.t.run
    rows = tx.execute(select(r).order_by(r.c.started_utc.desc()).limit(limit)).all()
    out = []
    for row in rows:
        m = row._mapping
        started, completed = _utc(m["started_utc"]), _utc(m["completed_utc"])
        metrics = m["metrics_json"] or {}
        out.append(
            {
                "run_id": m["run_id"],
                "run_type": m["run_type"],
                "status": m["status"],
                "job_id": m["job_id"],
                "worker_id": m["worker_id"],
                "model_name": m["model_name"],
                "started_utc": _iso(started),
                "completed_utc": _iso(completed),
                "seconds": _seconds(started, completed),
                "metrics": {key: metrics[key] for key in RUN_METRIC_KEYS if key in metrics},
                "error": m["error"],
            }
        )
    return out


def _llm_runs(tx: Tx, limit: int) -> list[dict[str, Any]]:
    out = []
    for run in list_llm_runs(tx, limit=limit):
        started, completed = _utc(run["started_utc"]), _utc(run["completed_utc"])
        metrics = run["metrics_json"] or {}
        out.append(
            {
                "run_id": run["run_id"],
                "job_id": run["job_id"],
                "interrogation": run["interrogation_key"],
                "subject": run["subject_key"],
                "status": run["status"],
                "stale": run["stale"],
                "model_name": run["model_name"],
                "started_utc": _iso(started),
                "seconds": _seconds(started, completed),
                "model_seconds": metrics.get("model_seconds"),
                "attempts": metrics.get("attempts"),
                "valid_on_attempt": metrics.get("valid_on_attempt"),
                "error": run["error"],
            }
        )
    return out


def _problem_jobs(tx: Tx, j: Table, type_column: Column[Any], status: str, limit: int) -> dict[str, Any]:
    total = int(tx.execute(select(func.count()).select_from(j).where(j.c.status == status)).scalar_one())
    rows = tx.execute(
        select(
            j.c.job_id,
            type_column.label("job_type"),
            j.c.attempt_count,
            j.c.max_attempts,
            j.c.last_error,
            j.c.updated_utc,
        )
        .where(j.c.status == status)
        .order_by(j.c.updated_utc.desc(), j.c.job_id.desc())
        .limit(limit)
    ).all()
    return {
        "total": total,
        "items": [
            {
                "job_id": int(row.job_id),
                "job_type": row.job_type,
                "attempts": int(row.attempt_count),
                "max_attempts": int(row.max_attempts),
                "reason": row.last_error,
                "updated_utc": _iso(row.updated_utc),
            }
            for row in rows
        ],
    }


def space_coverage(tx: Tx) -> list[dict[str, Any]]:
    s, e, c = tx.t.embedding_space, tx.t.embedding, tx.t.chunk
    chunks_total = int(tx.execute(select(func.count()).select_from(c)).scalar_one())
    current = dict(
        tx.execute(
            select(e.c.embedding_space_id, func.count())
            .select_from(e.join(c, (c.c.chunk_id == e.c.chunk_id) & (c.c.content_sha256 == e.c.input_content_sha256)))
            .group_by(e.c.embedding_space_id)
        ).all()
    )
    stored = dict(tx.execute(select(e.c.embedding_space_id, func.count()).group_by(e.c.embedding_space_id)).all())
    out = []
    for row in tx.execute(select(s).order_by(s.c.embedding_space_id)).all():
        embedded = int(current.get(row.embedding_space_id, 0))
        out.append(
            {
                "embedding_space_id": int(row.embedding_space_id),
                "name": row.name,
                "provider": row.provider,
                "model_name": row.model_name,
                "dimensions": int(row.dimensions),
                "embeddings": int(stored.get(row.embedding_space_id, 0)),
                "chunks_embedded": embedded,
                "chunks_total": chunks_total,
                "coverage": round(embedded / chunks_total, 4) if chunks_total else None,
            }
        )
    return out


def _sources(tx: Tx) -> dict[str, Any]:
    reg = tx.t.source_registry
    by_status = {str(k): int(v) for k, v in tx.execute(select(reg.c.status, func.count()).group_by(reg.c.status))}
    chunks = int(tx.execute(select(func.count()).select_from(tx.t.chunk)).scalar_one())
    return {"by_status": by_status, "total": sum(by_status.values()), "chunks": chunks}


def _throughput(tx: Tx, now: datetime, bucket_seconds: int, buckets: int) -> dict[str, Any]:
    """Jobs completed and chunks/embeddings written per time bucket, oldest first, from completion times."""
    start = now - timedelta(seconds=bucket_seconds * buckets)
    series: list[dict[str, Any]] = [
        {
            "start_utc": (start + timedelta(seconds=bucket_seconds * i)).isoformat(),
            "jobs_succeeded": 0,
            "jobs_failed": 0,
            "chunks_written": 0,
            "embeddings_written": 0,
        }
        for i in range(buckets)
    ]

    def slot(value: Any) -> int | None:
        moment = _utc(value)
        if moment is None or moment < start or moment > now:
            return None
        return min(buckets - 1, int((moment - start).total_seconds() // bucket_seconds))

    j, r = tx.t.job, tx.t.run
    for status, completed in tx.execute(
        select(j.c.status, j.c.completed_utc).where(
            j.c.completed_utc >= start, j.c.status.in_(("SUCCEEDED", "DEADLETTER"))
        )
    ):
        index = slot(completed)
        if index is not None:
            series[index]["jobs_succeeded" if status == "SUCCEEDED" else "jobs_failed"] += 1
    for completed, metrics in tx.execute(select(r.c.completed_utc, r.c.metrics_json).where(r.c.completed_utc >= start)):
        index = slot(completed)
        if index is not None and isinstance(metrics, dict):
            series[index]["chunks_written"] += int(metrics.get("chunks_written") or 0)
            series[index]["embeddings_written"] += int(metrics.get("embeddings_written") or 0)
    return {"bucket_seconds": bucket_seconds, "buckets": series}
