"""Run lineage: every execution that writes chunks or embeddings leaves a ``vector.run`` row."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update

from holocron.store.database import Database, Tx
from holocron.store.spaces import EmbeddingSpace
from holocron.store.types import utcnow


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
            )
        )
    return run_id


def finish_run(db: Database, run_id: str, *, metrics: dict[str, Any], error: str | None = None) -> None:
    with db.write() as tx:
        tx.execute(
            update(tx.t.run)
            .where(tx.t.run.c.run_id == run_id)
            .values(
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
