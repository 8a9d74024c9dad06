"""The crawl's records on both engines: the control every crawler obeys, runs, validators and the overview."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import update

from holocron.crawl.queue import WorkItemInput, WorkItemQueue
from holocron.hashing import sha256_text
from holocron.store.crawl import (
    close_dead_crawl_runs,
    control_states,
    crawl_overview,
    effective_state,
    finish_crawl_run,
    last_validators,
    set_control,
    start_crawl_run,
)
from holocron.store.database import Database
from holocron.store.sources import RawRecord, register_in
from holocron.store.types import utcnow


def test_pause_resume_and_drain_are_shared_and_the_stricter_wins(db: Database) -> None:
    set_control(db, "draining")
    set_control(db, "paused", scope="awoiaf", reason="their maintenance window")
    with db.read() as tx:
        states = control_states(tx)
    assert effective_state(states, "awoiaf") == "paused" and effective_state(states, "enwiki") == "draining"
    set_control(db, "running")
    set_control(db, "running", scope="awoiaf")
    with db.read() as tx:
        assert effective_state(control_states(tx), "awoiaf") == "running"


def test_a_fetched_records_audit_columns_give_the_next_requests_validators(db: Database) -> None:
    payload = '{"query": {"pages": []}}'
    record = RawRecord(
        source_system="awoiaf",
        resource_id="Arya Stark",
        request_uri="http://127.0.0.1/api.php",
        source_type="mediawiki",
        content_type="application/json",
        payload=payload,
        content_sha256=sha256_text(payload),
        fetched_at_utc=utcnow(),
        audit={"status_code": 200, "response_headers": {"ETag": '"abc"'}, "duration_ms": 12.5, "work_item_id": 7},
    )
    with db.write() as tx:
        assert register_in(tx, [record]).new
    with db.write() as tx:
        assert register_in(tx, [record]).unchanged  # the same content again: nothing new
    with db.read() as tx:
        found = last_validators(tx, "awoiaf", ["Arya Stark", "Jon Snow"])
    assert list(found) == ["Arya Stark"]
    assert found["Arya Stark"].etag == '"abc"' and found["Arya Stark"].content_sha256 == record.content_sha256


def test_the_overview_counts_items_by_state_and_errors_by_reason(db: Database) -> None:
    queue = WorkItemQueue(db)
    for title in ("A", "B", "C"):
        queue.enqueue(
            "page",
            WorkItemInput(
                source_system="mediawiki",
                source_name="w",
                resource_type="page",
                resource_id=title,
                request_uri="http://127.0.0.1/api.php",
            ),
        )
    first = queue.claim("c", lease_seconds=30)
    assert first is not None and queue.fail(first, "HTTP 404 Not Found", permanent=True)
    second = queue.claim("c", lease_seconds=30)
    assert second is not None and queue.succeed(second)
    with db.read() as tx:
        overview = crawl_overview(tx)
    assert overview["items"] == {"failed": 1, "completed": 1, "pending": 1}
    assert overview["by_source"] == {"w": {"failed": 1, "completed": 1, "pending": 1}}
    assert overview["errors"] == [{"reason": "HTTP 404 Not Found", "count": 1, "example": "HTTP 404 Not Found"}]


def test_a_crawl_run_left_by_an_exited_process_is_closed(db: Database) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = start_crawl_run(db, {"sources": ["w"]}, worker_id="w1")
    live = start_crawl_run(db, {"sources": ["w"]}, worker_id="w2")
    with db.write() as tx:
        run = tx.t.crawl_run
        tx.execute(update(run).where(run.c.run_id == dead).values(pid=int(gone.stdout)))
    with db.write() as tx:
        assert close_dead_crawl_runs(tx) == 1
    finish_crawl_run(db, live, stats={"fetched": 3})
    with db.read() as tx:
        runs = {r["run_id"]: r for r in crawl_overview(tx)["runs"]}
    assert runs[dead]["status"] == "FAILED" and "has exited" in runs[dead]["error"]
    assert runs[live]["status"] == "SUCCEEDED" and runs[live]["stats"] == {"fetched": 3}
