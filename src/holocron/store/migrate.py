"""Alembic, driven from code: ``holocron db upgrade`` and every command that opens the store call this.

Many processes may start at once against one database (a deployment restarting its workers): ``upgrade``
migrates under a lock that only one of them holds at a time (PostgreSQL: a transaction-scoped advisory lock
on a fixed key; SQLite: the write lock, ``BEGIN IMMEDIATE``), reads the revision again under it, and migrates
only if that is still needed. The first migrates; the others wait for it and then find nothing to do.

A database at a revision these migration scripts do not know was upgraded by newer code: this code refuses it
(:class:`SchemaTooNewError`) rather than run against a schema it was not written for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, select

from holocron.store.revision import SchemaTooNewError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

MIGRATION_LOCK_KEY = 0x686F6C6F63726F6E  # "holocron" in ASCII: the PostgreSQL advisory lock key of migrations
"""Fixed, so that every holocron process on a database contends for the same lock."""


class HasEngine(Protocol):
    """What migrations need of the store: its engine (a :class:`~holocron.store.database.Database`)."""

    @property
    def engine(self) -> Engine: ...


def alembic_config(db: HasEngine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", db.engine.url.render_as_string(hide_password=False))
    return config


def current_revision(db: HasEngine) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: HasEngine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def check_known(script: ScriptDirectory, current: str | None) -> None:
    """Raise :class:`SchemaTooNewError` when ``current`` is not one of ``script``'s revisions."""
    if current is None:
        return
    if current not in {revision.revision for revision in script.walk_revisions()}:
        raise SchemaTooNewError(current, script.get_current_head())


def upgrade(db: HasEngine, revision: str = "head") -> bool:
    """Migrate to ``revision`` under the migration lock; returns whether this call ran any migration.

    Raises :class:`SchemaTooNewError` when the database is at a revision these migrations do not know.
    """
    config = alembic_config(db)
    script = ScriptDirectory.from_config(config)
    target = _target(script, revision)
    current = current_revision(db)
    check_known(script, current)
    if current is not None and current == target:
        return False  # the common case, without taking any lock
    with _migration_lock(db) as conn:
        current = MigrationContext.configure(conn).get_current_revision()  # again, under the lock
        check_known(script, current)
        if current is not None and current == target:
            return False  # another process migrated while this one waited for the lock
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return True


def downgrade(db: HasEngine, revision: str) -> None:
    config = alembic_config(db)
    with _migration_lock(db) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


@contextmanager
def _migration_lock(db: HasEngine) -> Iterator[Connection]:
    """A transaction that holds the migration lock until it commits or rolls back."""
    with db.engine.connect() as conn:
        conn = conn.execution_options(holocron_write=True)  # SQLite: BEGIN IMMEDIATE, the write lock
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            yield conn


def _target(script: ScriptDirectory, revision: str) -> str | None:
    """The revision id that ``revision`` (an id, ``head``, ...) names; None when that is not one revision."""
    try:
        found = script.get_revision(revision)
    except Exception:  # an unknown or ambiguous name: alembic's own command reports it, under the lock
        return None
    return found.revision if found is not None else None
