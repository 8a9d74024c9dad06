"""Alembic, driven from code: ``holocron db upgrade`` and every command that opens the store call this."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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


def upgrade(db: HasEngine, revision: str = "head") -> None:
    if revision == "head" and current_revision(db) == head_revision(db):
        return
    with db.engine.begin() as conn:
        config = alembic_config(db)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(db: HasEngine, revision: str) -> None:
    with db.engine.begin() as conn:
        config = alembic_config(db)
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
