"""The worker-kill tests on PostgreSQL: the same tests as ``test_worker_processes.py``, with the worker processes
sharing one fresh PostgreSQL database instead of a SQLite file.

The test body and its checks are imported, not copied, so both engines are held to exactly the same contract:
every job SUCCEEDED (or DEADLETTER with a reason), exactly one embedding per (chunk, space), whole rows, no job
or run left RUNNING. Only the ``worker_db_url`` fixture differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from conftest import fresh_pg_database
from holocron.store import pg_hnsw
from holocron.store.database import Database
from test_worker_processes import (
    corpus,
    test_a_killed_workers_job_is_back_in_the_queue_within_seconds_by_default,
    test_killed_and_stopped_workers_leave_a_whole_index,
)

__all__ = [
    "corpus",
    "test_a_killed_workers_job_is_back_in_the_queue_within_seconds_by_default",
    "test_killed_and_stopped_workers_leave_a_whole_index",
]

pytestmark = [pytest.mark.model, pytest.mark.postgres]


@pytest.fixture()
def worker_db_url(pg_admin_engine: Engine) -> Iterator[str]:
    """A fresh PostgreSQL database (with pgvector) for the worker processes."""
    with fresh_pg_database(pg_admin_engine) as url:
        yield url


@pytest.fixture()
def engine_checks() -> Callable[[Database], None]:
    """Afterwards, every space has its HNSW index: part of the test, so it runs only once the test got there.

    (Run from a fixture's teardown, it would also run after a test that failed before the schema existed, and
    its UndefinedTable would be reported on top of the test's own error.)
    """

    def check(db: Database) -> None:
        with db.read() as tx:
            spaces = list(tx.execute(text("SELECT embedding_space_id FROM vector.embedding_space")).scalars())
            assert spaces
            for space_id in spaces:
                # The first embeddings of the space created its index, inside a worker process.
                assert pg_hnsw.index_exists(tx, int(space_id))

    return check
