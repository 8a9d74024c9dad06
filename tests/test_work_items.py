"""``ingest.work_items`` on both engines: the one queue implementation behind the inventory's columns and states.

Every check reads the table as the inventory names it (``attempt``, ``claimed_by``, ``lease_expires_at``,
``pending|claimed|completed|failed``), so that a tool written against the inventory sees what the queue did.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from holocron.crawl.queue import WorkItemInput, WorkItemQueue
from holocron.jobs.models import InvalidPayloadError, JobStatus
from holocron.jobs.queue import NewJob
from holocron.store.database import Database


def item(title: str, **more: Any) -> WorkItemInput:
    return WorkItemInput(
        source_system="mediawiki",
        source_name="en.wikipedia.org",
        resource_type="page",
        resource_id=title,
        variant="parse",
        request_uri=f"http://127.0.0.1/w/api.php?action=parse&page={title}",
        **more,
    )


def stored(db: Database, work_item_id: int) -> dict[str, Any]:
    """The row as the inventory's columns hold it (raw SQL: no mapping in between)."""
    table = db.t.qualified(db.t.work_items)
    with db.read() as tx:
        row = tx.execute(
            text(
                f"SELECT status, attempt, claimed_by, claimed_at, lease_expires_at, last_error, resource_id "
                f"FROM {table} WHERE work_item_id = :id"
            ),
            {"id": work_item_id},
        ).one()
    return dict(row._mapping)


def test_a_work_item_goes_pending_claimed_completed_under_the_inventorys_names(db: Database) -> None:
    queue = WorkItemQueue(db)
    made = queue.enqueue("page", item("Chess"))
    assert made.created and stored(db, made.job.job_id)["status"] == "pending"
    again = queue.enqueue("page", item("Chess", depth=3))
    assert not again.created and again.job.job_id == made.job.job_id

    claimed = queue.claim("crawler-1", lease_seconds=30)
    assert claimed is not None and claimed.resource_id == "Chess" and claimed.status is JobStatus.RUNNING
    row = stored(db, claimed.job_id)
    assert row["status"] == "claimed" and row["claimed_by"] == "crawler-1" and row["attempt"] == 1
    assert row["claimed_at"] is not None and row["lease_expires_at"] is not None
    assert queue.heartbeat(claimed, lease_seconds=30)

    assert queue.succeed(claimed, {"ingest_id": 1})
    row = stored(db, claimed.job_id)
    assert row["status"] == "completed" and row["lease_expires_at"] is None
    # Found again after it was fetched: still the one item (its identity is its dedupe key for good).
    assert not queue.enqueue("page", item("Chess")).created
    assert queue.count() == 1


def test_failures_retry_as_pending_then_fail_with_the_reason(db: Database) -> None:
    queue = WorkItemQueue(db, retry_base_s=0.0, retry_cap_s=0.0)
    made = queue.enqueue("page", item("Castor"), max_attempts=2)
    first = queue.claim("c", lease_seconds=30)
    assert first is not None
    outcome = queue.fail(first, "HTTP 503 from en.wikipedia.org")
    assert outcome is not None and outcome.status is JobStatus.FAILED
    row = stored(db, made.job.job_id)
    assert (row["status"], row["attempt"], row["last_error"]) == ("pending", 1, "HTTP 503 from en.wikipedia.org")

    second = queue.claim("c", lease_seconds=30)
    assert second is not None and second.job_id == made.job.job_id
    outcome = queue.fail(second, "HTTP 503 again")
    assert outcome is not None and outcome.status is JobStatus.DEADLETTER
    row = stored(db, made.job.job_id)
    assert (row["status"], row["attempt"]) == ("failed", 2)
    assert queue.claim("c", lease_seconds=30) is None

    permanent = queue.enqueue("page", item("Nope"))
    claimed = queue.claim("c", lease_seconds=30)
    assert claimed is not None and claimed.job_id == permanent.job.job_id
    queue.fail(claimed, "HTTP 404: no such page", permanent=True)
    assert stored(db, permanent.job.job_id)["status"] == "failed"


def test_an_expired_claim_is_pending_again_and_its_old_owner_is_fenced_off(db: Database) -> None:
    queue = WorkItemQueue(db)
    queue.enqueue("page", item("Bush"))
    lost = queue.claim("dead-crawler", lease_seconds=0.2)
    assert lost is not None
    time.sleep(0.5)
    reclaimed = queue.reclaim_expired()
    assert reclaimed.retried == [lost.job_id]
    row = stored(db, lost.job_id)
    assert row["status"] == "pending" and "dead-crawler stopped heartbeating" in row["last_error"]

    taken = queue.claim("live-crawler", lease_seconds=30)
    assert taken is not None and taken.job_id == lost.job_id and taken.attempt_count == 2
    assert not queue.succeed(lost, {"ingest_id": 9})  # the dead crawler's token no longer owns it
    assert not queue.heartbeat(lost, lease_seconds=30)
    assert queue.succeed(taken, {"ingest_id": 10})
    assert stored(db, lost.job_id)["status"] == "completed"


def test_bad_items_are_rejected_and_nothing_is_stored(db: Database) -> None:
    queue = WorkItemQueue(db)
    good = {"source_system": "mediawiki", "source_name": "w", "resource_id": "A", "request_uri": "http://x/"}
    with pytest.raises(InvalidPayloadError, match="request_uri"):
        queue.enqueue_many(
            [NewJob("page", good), NewJob("page", {**good, "resource_id": "B", "request_uri": "ftp://x"})]
        )
    with pytest.raises(InvalidPayloadError, match="resource_type"):
        queue.enqueue("Not A Type", good)
    with pytest.raises(InvalidPayloadError, match="control character"):
        queue.enqueue("page", {**good, "resource_id": "a\x1fb"})
    assert queue.count() == 0


def test_a_retry_after_floors_the_backoff_and_sources_route_the_claims(db: Database) -> None:
    queue = WorkItemQueue(db, retry_base_s=0.0, retry_cap_s=0.0)
    queue.enqueue("page", item("Chess"))
    other = item("Go").model_copy(update={"source_name": "other.wiki"})
    queue.enqueue("page", other)
    assert queue.claim("c", lease_seconds=30, spaces=["nowhere"]) is None
    claimed = queue.claim("c", lease_seconds=30, spaces=["other.wiki"])
    assert claimed is not None and claimed.resource_id == "Go"
    outcome = queue.fail(claimed, "HTTP 429 Too Many Requests", not_before_s=120)
    assert outcome is not None and outcome.retry_in_seconds is not None and outcome.retry_in_seconds >= 120
    assert queue.claim("c", lease_seconds=30, spaces=["other.wiki"]) is None  # not before two minutes


def test_completed_items_are_reopened_for_a_refresh(db: Database) -> None:
    queue = WorkItemQueue(db)
    made = queue.enqueue("page", item("Chess")).job
    claimed = queue.claim("c", lease_seconds=30)
    assert claimed is not None and queue.succeed(claimed)
    table = queue.kind.job_table(db.t)
    with db.write() as tx:
        assert queue.reopen_in(tx, table.c.source_name == "en.wikipedia.org") == [made.job_id]
    row = stored(db, made.job_id)
    assert row["status"] == "pending" and row["attempt"] == 0
    assert not queue.enqueue("page", item("Chess")).created  # still the item's identity
