"""The crawl's records: its runs (``ingest.crawl_run``), the pause/resume/drain switch every crawler obeys
(``ingest.crawl_control``), what a conditional re-fetch sends (the last response's validators) and what
``holocron crawl status`` shows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import desc, func, select, update

from holocron.store.database import Database, Tx
from holocron.store.runs import HOST, process_alive
from holocron.store.types import WorkItemStatus, utcnow

ControlState = Literal["running", "paused", "draining"]
CONTROL_STATES: tuple[ControlState, ...] = ("running", "paused", "draining")
EVERY_SOURCE = "*"
"""The control scope that holds every source; a source's own scope is its name."""


def start_crawl_run(db: Database, config: Mapping[str, Any], *, worker_id: str) -> str:
    """Open a crawl run (the lineage of every record it stores); dead crawlers' runs are closed first."""
    run_id = str(uuid.uuid4())
    with db.write() as tx:
        close_dead_crawl_runs(tx)
        tx.execute(
            tx.t.crawl_run.insert().values(
                run_id=run_id,
                status="RUNNING",
                config_json=dict(config),
                stats_json={},
                worker_id=worker_id,
                host=HOST,
                pid=os.getpid(),
                started_utc=utcnow(),
            )
        )
    return run_id


def finish_crawl_run(db: Database, run_id: str, *, stats: Mapping[str, Any], error: str | None = None) -> None:
    with db.write() as tx:
        tx.execute(
            update(tx.t.crawl_run)
            .where(tx.t.crawl_run.c.run_id == run_id)
            .values(
                status="FAILED" if error else "SUCCEEDED", stats_json=dict(stats), error=error, completed_utc=utcnow()
            )
        )


def record_crawl_stats(db: Database, run_id: str, stats: Mapping[str, Any]) -> None:
    with db.write() as tx:
        tx.execute(update(tx.t.crawl_run).where(tx.t.crawl_run.c.run_id == run_id).values(stats_json=dict(stats)))


def close_dead_crawl_runs(tx: Tx) -> int:
    """Close as FAILED the RUNNING crawl runs of this host whose process has exited (a killed crawler); the
    work items they held come back through their leases."""
    run = tx.t.crawl_run
    rows = tx.execute(
        select(run.c.run_id, run.c.pid).where(
            run.c.status == "RUNNING", run.c.host == HOST, run.c.pid.is_not(None), run.c.pid != os.getpid()
        )
    ).all()
    dead = [row.run_id for row in rows if not process_alive(int(row.pid))]
    if not dead:
        return 0
    return (
        tx.execute(
            update(run)
            .where(run.c.run_id.in_(dead), run.c.status == "RUNNING")
            .values(status="FAILED", error=f"its process on {HOST} has exited", completed_utc=utcnow())
        ).rowcount
        or 0
    )


def set_control(db: Database, state: ControlState, *, scope: str = EVERY_SOURCE, reason: str | None = None) -> None:
    """Record what every crawler of ``scope`` must do from now on (on every machine: they poll this row)."""
    if state not in CONTROL_STATES:
        raise ValueError(f"unknown crawl state {state!r}; expected one of {', '.join(CONTROL_STATES)}")
    with db.write() as tx:
        control = tx.t.crawl_control
        values = {"state": state, "reason": reason, "updated_by": f"{HOST}:{os.getpid()}", "updated_utc": utcnow()}
        changed = tx.execute(update(control).where(control.c.scope == scope).values(**values)).rowcount
        if not changed:
            tx.execute(control.insert().values(scope=scope, **values))


def control_states(tx: Tx) -> dict[str, ControlState]:
    """Every scope's state; a scope without a row is running."""
    control = tx.t.crawl_control
    return {row.scope: row.state for row in tx.execute(select(control.c.scope, control.c.state))}


def effective_state(states: Mapping[str, ControlState], source_name: str) -> ControlState:
    """The stricter of the global and the source's state: paused over draining over running."""
    found = {states.get(EVERY_SOURCE, "running"), states.get(source_name, "running")}
    for state in ("paused", "draining"):
        if state in found:
            return state  # type: ignore[return-value]
    return "running"


@dataclass(frozen=True)
class Validators:
    """What the last stored response of a resource said about itself, for a conditional request."""

    etag: str | None
    last_modified: str | None
    content_sha256: str


def last_validators(tx: Tx, source_system: str, resource_ids: Sequence[str]) -> dict[str, Validators]:
    """The newest stored response of each resource: its ``ETag``, ``Last-Modified`` and content hash."""
    raw = tx.t.ingest_records
    if not resource_ids:
        return {}
    rows = tx.execute(
        select(raw.c.resource_id, raw.c.response_headers, raw.c.hash_sha256)
        .where(raw.c.source_system == source_system, raw.c.resource_id.in_(list(resource_ids)))
        .order_by(raw.c.resource_id, desc(raw.c.fetched_at_utc), desc(raw.c.ingest_id))
    ).all()
    found: dict[str, Validators] = {}
    for row in rows:
        if row.resource_id in found:
            continue
        headers = {str(k).lower(): str(v) for k, v in (row.response_headers or {}).items()}
        found[row.resource_id] = Validators(headers.get("etag"), headers.get("last-modified"), row.hash_sha256)
    return found


def crawl_overview(tx: Tx, *, source_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Items by state and source, errors by reason, the latest runs and the control states."""
    items = tx.t.work_items
    query = select(items.c.source_name, items.c.status, func.count()).group_by(items.c.source_name, items.c.status)
    if source_names:
        query = query.where(items.c.source_name.in_(list(source_names)))
    by_source: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for source, status, count in tx.execute(query):
        state = _state_name(status)
        by_source.setdefault(source, {})[state] = by_source.get(source, {}).get(state, 0) + int(count)
        totals[state] = totals.get(state, 0) + int(count)
    errors_query = (
        select(items.c.last_error, func.count()).where(items.c.last_error.is_not(None)).group_by(items.c.last_error)
    )
    if source_names:
        errors_query = errors_query.where(items.c.source_name.in_(list(source_names)))
    by_reason: dict[str, dict[str, Any]] = {}
    for message, count in tx.execute(errors_query):
        reason = str(message).split(": ", 1)[0]  # "HTTP 404 Not Found: <the server's words>" -> its kind
        entry = by_reason.setdefault(reason, {"reason": reason, "count": 0, "example": str(message)})
        entry["count"] += int(count)
    errors = sorted(by_reason.values(), key=lambda e: (-e["count"], e["reason"]))[:20]
    run = tx.t.crawl_run
    runs = [
        {
            "run_id": row.run_id,
            "status": row.status,
            "host": row.host,
            "pid": row.pid,
            "started_utc": row.started_utc.isoformat() if row.started_utc else None,
            "completed_utc": row.completed_utc.isoformat() if row.completed_utc else None,
            "stats": row.stats_json or {},
            "error": row.error,
        }
        for row in tx.execute(select(run).order_by(desc(run.c.started_utc)).limit(5))
    ]
    return {
        "items": totals,
        "by_source": by_source,
        "errors": errors,
        "runs": runs,
        "control": control_states(tx),
    }


def _state_name(status: Any) -> str:
    """A work item's state under the inventory's names (the column reads back the queue's)."""
    value = str(getattr(status, "value", status))
    return WorkItemStatus.STORED.get(value, value)


def unfinished_items(tx: Tx, source_names: Sequence[str]) -> int:
    """Work items of these sources still to do: pending (retries waiting out their backoff too) or claimed."""
    items = tx.t.work_items
    return int(
        tx.execute(
            select(func.count()).where(
                items.c.source_name.in_(list(source_names)), items.c.status.in_(["NEW", "RUNNING"])
            )
        ).scalar_one()
    )


def items_of(tx: Tx, source_name: str) -> int:
    """How many work items a source has (its ``max_items`` cap counts them)."""
    items = tx.t.work_items
    return int(tx.execute(select(func.count()).where(items.c.source_name == source_name)).scalar_one())
