"""The LLM runtime's rows: ``llm.run``, ``llm.artifact``, ``llm.run_evidence`` and ``sem.source_page``.

Lineage is read, never copied: a run is **stale** when an evidence item of a bundle it was given comes from
a chunk that no longer exists (its source was edited and re-chunked, or deleted). Chunk ids are content
hashes, so an unchanged chunk keeps its id through a re-chunk and keeps its answers current. The **current**
answer about a subject is its latest successful run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.sql import Select

from holocron.store.database import Database, Tx, upsert
from holocron.store.runs import HOST
from holocron.store.types import utcnow


def start_llm_run(
    db: Database,
    *,
    job_id: int | None,
    interrogation_key: str,
    interrogation_version: str,
    worker_id: str | None,
    options: Mapping[str, Any],
) -> str:
    """A RUNNING row, visible while the model works; the job's lease covers it (a reclaim closes it)."""
    run_id = str(uuid.uuid4())
    with db.write() as tx:
        tx.execute(
            tx.t.llm_run.insert().values(
                run_id=run_id,
                job_id=job_id,
                interrogation_key=interrogation_key,
                interrogation_version=interrogation_version,
                worker_id=worker_id,
                status="RUNNING",
                options_json=dict(options),
                metrics_json={},
                host=HOST,
                pid=os.getpid(),
                started_utc=utcnow(),
            )
        )
    return run_id


def finish_llm_run_in(
    tx: Tx,
    run_id: str,
    *,
    status: str,
    model: Mapping[str, Any],
    metrics: Mapping[str, Any],
    error: str | None,
) -> bool:
    """Close a RUNNING run; False when it was closed already (a reclaim got there first)."""
    r = tx.t.llm_run
    return bool(
        tx.execute(
            update(r)
            .where(r.c.run_id == run_id, r.c.status == "RUNNING")
            .values(
                status=status,
                provider=model.get("provider"),
                endpoint_url=model.get("endpoint_url"),
                model_name=model.get("model_name"),
                model_tag=model.get("model_tag"),
                model_digest=model.get("model_digest"),
                metrics_json=dict(metrics),
                error=error,
                completed_utc=utcnow(),
            )
        ).rowcount
    )


def add_artifacts_in(tx: Tx, run_id: str, artifacts: Sequence[Mapping[str, Any]]) -> None:
    """Artifact rows (``artifact_type``, ``content_json``, ``content_ref``, ``content_sha256``, ``byte_count``)."""
    if artifacts:
        now = utcnow()
        tx.execute(tx.t.llm_artifact.insert(), [{**a, "run_id": run_id, "created_utc": now} for a in artifacts])


def link_evidence_in(tx: Tx, run_id: str, bundle_ids: Sequence[str]) -> None:
    if bundle_ids:
        now = utcnow()
        tx.execute(
            tx.t.llm_run_evidence.insert(),
            [{"run_id": run_id, "bundle_id": bundle_id, "created_utc": now} for bundle_id in bundle_ids],
        )


def upsert_source_page(tx: Tx, ctx: Any, *, primary_type: str, confidence: float | None) -> None:
    """The page's row in ``sem.source_page`` from ``ctx`` (an answer context: run, version, source, title)."""
    values = {
        "page_id": ctx.source_id,
        "title": ctx.title,
        "primary_type": primary_type,
        "confidence": confidence,
        "content_sha256": ctx.content_sha256,
        "run_id": ctx.run_id,
        "interrogation_version": ctx.version,
        "classified_utc": utcnow(),
    }
    upsert(tx, tx.t.source_page, values, ["page_id"])


def llm_run_ids(tx: Tx, job_id: int) -> list[str]:
    """Every run of one job, oldest first."""
    r = tx.t.llm_run
    return list(tx.execute(select(r.c.run_id).where(r.c.job_id == job_id).order_by(r.c.started_utc)).scalars())


def orphan_run_ids(tx: Tx, run_ids: Sequence[str]) -> set[str]:
    """Of these run ids (folders found in the lake), those whose files no row points at: no artifact rows,
    and no run still RUNNING (a run being written)."""
    if not run_ids:
        return set()
    r, a = tx.t.llm_run, tx.t.llm_artifact
    with_rows = set(tx.execute(select(a.c.run_id).where(a.c.run_id.in_(list(run_ids))).distinct()).scalars())
    running = set(
        tx.execute(select(r.c.run_id).where(r.c.run_id.in_(list(run_ids)), r.c.status == "RUNNING")).scalars()
    )
    return set(run_ids) - with_rows - running


# --- reading -----------------------------------------------------------------------------------------------------


def _stale_condition(tx: Tx, run_id_column: Any) -> Any:
    """An evidence item of one of the run's bundles comes from a chunk that is gone."""
    re_, i, c = tx.t.llm_run_evidence, tx.t.evidence_item, tx.t.chunk
    return exists(
        select(1)
        .select_from(re_.join(i, i.c.bundle_id == re_.c.bundle_id))
        .where(
            re_.c.run_id == run_id_column,
            i.c.chunk_id.is_not(None),
            ~exists(select(1).where(c.c.chunk_id == i.c.chunk_id)),
        )
    )


def _runs_query(tx: Tx) -> Select[Any]:
    r, j = tx.t.llm_run, tx.t.llm_job
    return select(
        r,
        j.c.subject_key,
        j.c.input_json,
        _stale_condition(tx, r.c.run_id).label("stale"),
    ).select_from(r.outerjoin(j, j.c.job_id == r.c.job_id))


def _run_json(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["stale"] = bool(data["stale"]) if data["status"] == "SUCCEEDED" else False
    return data


def list_llm_runs(
    tx: Tx,
    *,
    limit: int = 50,
    offset: int = 0,
    job_id: int | None = None,
    interrogation: str | None = None,
    status: str | None = None,
    stale: bool | None = None,
) -> list[dict[str, Any]]:
    r = tx.t.llm_run
    query = _filtered(tx, _runs_query(tx), job_id, interrogation, status, stale)
    query = query.order_by(r.c.started_utc.desc(), r.c.run_id).limit(limit).offset(offset)
    return [_run_json(row) for row in tx.execute(query)]


def count_llm_runs(
    tx: Tx,
    *,
    job_id: int | None = None,
    interrogation: str | None = None,
    status: str | None = None,
    stale: bool | None = None,
) -> int:
    r = tx.t.llm_run
    base = select(func.count()).select_from(r)
    return int(tx.execute(_filtered(tx, base, job_id, interrogation, status, stale)).scalar_one())


def _filtered(
    tx: Tx, query: Select[Any], job_id: int | None, interrogation: str | None, status: str | None, stale: bool | None
) -> Select[Any]:
    r = tx.t.llm_run
    if job_id is not None:
        query = query.where(r.c.job_id == job_id)
    if interrogation is not None:
        query = query.where(r.c.interrogation_key == interrogation)
    if status is not None:
        query = query.where(r.c.status == status)
    if stale is not None:
        condition = _stale_condition(tx, r.c.run_id)
        query = query.where(and_(r.c.status == "SUCCEEDED", condition) if stale else ~condition)
    return query


def get_llm_run(tx: Tx, run_id: str) -> dict[str, Any] | None:
    """One run with its artifacts (metadata), evidence (bundle ids and each item's chunk and whether that
    chunk still exists) and, when it answered, the parsed output."""
    row = tx.execute(_runs_query(tx).where(tx.t.llm_run.c.run_id == run_id)).first()
    if row is None:
        return None
    run = _run_json(row)
    run["artifacts"] = llm_artifacts(tx, run_id, with_content=False)
    re_, i, c = tx.t.llm_run_evidence, tx.t.evidence_item, tx.t.chunk
    items = tx.execute(
        select(
            re_.c.bundle_id,
            i.c.sequence,
            i.c.evidence_id,
            i.c.chunk_id,
            i.c.content_ref_json,
            exists(select(1).where(c.c.chunk_id == i.c.chunk_id)).label("chunk_exists"),
        )
        .select_from(re_.join(i, i.c.bundle_id == re_.c.bundle_id))
        .where(re_.c.run_id == run_id)
        .order_by(re_.c.bundle_id, i.c.sequence)
    ).all()
    run["evidence"] = [
        {
            "bundle_id": item.bundle_id,
            "sequence": item.sequence,
            "evidence_id": item.evidence_id,
            "chunk_id": item.chunk_id,
            "source_id": (item.content_ref_json or {}).get("source_id"),
            "chunk_exists": bool(item.chunk_exists),
        }
        for item in items
    ]
    a = tx.t.llm_artifact
    parsed = tx.execute(
        select(a.c.content_json).where(a.c.run_id == run_id, a.c.artifact_type == "parsed_output")
    ).scalar_one_or_none()
    run["parsed_output"] = parsed
    return run


def llm_artifacts(tx: Tx, run_id: str, *, with_content: bool = True) -> list[dict[str, Any]]:
    a = tx.t.llm_artifact
    columns = [col for col in a.c if with_content or col.name != "content_json"]
    rows = tx.execute(select(*columns).where(a.c.run_id == run_id).order_by(a.c.artifact_id))
    return [dict(row._mapping) for row in rows]


def stale_current_answers(tx: Tx, *, interrogation: str | None = None) -> list[dict[str, Any]]:
    """The current answer (latest successful run) of every subject whose evidence chunks were replaced,
    with the job input to ask again. A subject with a job still unfinished is left out (it is being asked)."""
    r, j = tx.t.llm_run, tx.t.llm_job
    latest = (
        select(j.c.subject_key, func.max(r.c.completed_utc).label("completed_utc"))
        .select_from(r.join(j, j.c.job_id == r.c.job_id))
        .where(r.c.status == "SUCCEEDED")
        .group_by(j.c.subject_key)
        .subquery()
    )
    query = (
        select(r.c.run_id, r.c.interrogation_key, r.c.interrogation_version, j.c.subject_key, j.c.input_json)
        .select_from(
            r.join(j, j.c.job_id == r.c.job_id).join(
                latest, and_(latest.c.subject_key == j.c.subject_key, latest.c.completed_utc == r.c.completed_utc)
            )
        )
        .where(r.c.status == "SUCCEEDED", _stale_condition(tx, r.c.run_id))
        .order_by(r.c.completed_utc)
    )
    if interrogation is not None:
        query = query.where(r.c.interrogation_key == interrogation)
    return [dict(row._mapping) for row in tx.execute(query)]


def source_pages(tx: Tx, *, limit: int = 1000) -> list[dict[str, Any]]:
    """``sem.source_page`` with each page's answer staleness."""
    p = tx.t.source_page
    query = select(p, _stale_condition(tx, p.c.run_id).label("stale")).order_by(p.c.page_id).limit(limit)
    return [{**dict(row._mapping), "stale": bool(row.stale)} for row in tx.execute(query)]


def llm_run_counts(tx: Tx) -> dict[str, int]:
    r = tx.t.llm_run
    counts = {status: int(n) for status, n in tx.execute(select(r.c.status, func.count()).group_by(r.c.status))}
    counts["stale"] = int(
        tx.execute(
            select(func.count()).select_from(r).where(r.c.status == "SUCCEEDED", _stale_condition(tx, r.c.run_id))
        ).scalar_one()
    )
    return counts
