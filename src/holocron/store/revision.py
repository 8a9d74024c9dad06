"""Which schema revision the store must be at, and the refusal when it is newer than this code: no imports, so
that a command can check both without loading alembic."""

from __future__ import annotations

HEAD_REVISION = "0006"
"""The newest migration (``store/migrations/versions``); tests/test_migrations.py checks it is alembic's head."""


class SchemaTooNewError(RuntimeError):
    """The database's schema revision is unknown to this code's migrations: newer code upgraded it."""

    def __init__(self, current: str, newest_known: str | None) -> None:
        self.current = current
        self.newest_known = newest_known
        super().__init__(
            f"the database schema is at revision {current}, which this version of holocron does not know "
            f"(its newest migration is {newest_known or 'none'}): the database was upgraded by a newer version; "
            f"run that version, or upgrade this installation"
        )
