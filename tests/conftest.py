"""Shared fixtures: the same tests on SQLite and on PostgreSQL + pgvector.

PostgreSQL comes from ``HOLOCRON_TEST_PG_URL`` (``make test`` starts one with ``scripts/pg.sh``). Without it
the PostgreSQL variants are skipped when pytest is run by hand, but under CI and ``make test`` a missing server is a
failure rather than a silently smaller test run.
"""

from __future__ import annotations

import functools
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, text

from holocron.store.database import Database

PG_URL_ENV = "HOLOCRON_TEST_PG_URL"


def strict_run() -> bool:
    """Under CI and under ``make test`` (which sets HOLOCRON_TEST_STRICT) a missing part fails, never skips."""
    return bool(os.environ.get("CI") or os.environ.get("HOLOCRON_TEST_STRICT"))


ENGINES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


# --- PostgreSQL server and per-test databases -----------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> URL | None:
    """The test server's URL from the environment, or None when there is none (never None under CI)."""
    value = os.environ.get(PG_URL_ENV, "").strip()
    if not value and strict_run():
        pytest.fail(f"{PG_URL_ENV} is not set: the PostgreSQL tests must run under CI and make test")
    return make_url(value) if value else None


@pytest.fixture(scope="session")
def pg_admin_engine(pg_server_url: URL | None) -> Iterator[Engine]:
    """An autocommit engine on the test server, for CREATE and DROP DATABASE (which refuse transactions)."""
    if pg_server_url is None:
        pytest.skip(f"needs PostgreSQL: set {PG_URL_ENV} (scripts/pg.sh start prints one)")
    engine = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@contextmanager
def cleanup(what: str, action: Callable[[], object]) -> Iterator[None]:
    """Run ``action`` after the block, whether it failed or not, without ever hiding the block's own error.

    When the block raised, a failing cleanup is added as a note to the block's exception (and shown as a warning)
    instead of replacing it: the traceback stays the one of the first failure. When the block succeeded, a
    failing cleanup is the error.
    """
    try:
        yield
    except BaseException as failure:
        try:
            action()
        except Exception as also:
            note = f"then {what} failed too: {type(also).__name__}: {also}"
            failure.add_note(note)
            warnings.warn(note, CleanupWarning, stacklevel=1)
        raise
    action()


class CleanupWarning(UserWarning):
    """A cleanup failed after the test had already failed (the test's own error is the one reported)."""


@contextmanager
def fresh_pg_database(admin: Engine, *, with_vector: bool = True) -> Iterator[str]:
    """A new, uniquely named database (with pgvector unless told), dropped afterwards even if still in use."""
    name = f"holocron_t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    with cleanup(f"dropping the test database {name}", drop):
        if with_vector:
            setup = create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with setup.connect() as conn:
                    conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            finally:
                setup.dispose()
        yield url.render_as_string(hide_password=False)


@pytest.fixture()
def new_pg_database(pg_admin_engine: Engine) -> Callable[..., AbstractContextManager[str]]:
    """Makes fresh PostgreSQL databases inside a test, e.g. one without pgvector."""
    return functools.partial(fresh_pg_database, pg_admin_engine)


@pytest.fixture()
def pg_url(pg_admin_engine: Engine) -> Iterator[str]:
    """A fresh PostgreSQL database, for tests that only make sense on PostgreSQL."""
    with fresh_pg_database(pg_admin_engine) as url:
        yield url


# --- Both engines ----------------------------------------------------------------------------------------------


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'holocron.db'}"


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine in turn: a file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with fresh_pg_database(request.getfixturevalue("pg_admin_engine")) as url:
        yield url


@contextmanager
def _upgraded(url: str) -> Iterator[Database]:
    db = Database(url)
    with cleanup("closing the database", db.dispose):
        db.upgrade()
        yield db


@pytest.fixture()
def db(db_url: str) -> Iterator[Database]:
    """The store on each engine, migrated to head."""
    with _upgraded(db_url) as database:
        yield database


@pytest.fixture()
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """The store on SQLite only, for behaviour that exists only there (files, WAL, PRAGMAs)."""
    with _upgraded(sqlite_url(tmp_path)) as database:
        yield database
