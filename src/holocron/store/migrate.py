"""Alembic, driven from code: ``holocron db upgrade`` and every command that opens the store call this."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

if TYPE_CHECKING:
    from holocron.store.database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", db.url.render_as_string(hide_password=False))
    config.attributes["database"] = db
    return config


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def upgrade(db: Database, revision: str = "head") -> None:
    if revision == "head" and current_revision(db) == head_revision(db):
        return
    with db.engine.begin() as conn:
        config = alembic_config(db)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        config = alembic_config(db)
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
