"""Search filters: which chunks a search may return, as SQL conditions applied inside the search.

Every filter narrows the candidate set before ranking (never the ranked list after taking k), so a filtered
search still returns k hits whenever k matching chunks exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, true, type_coerce

from holocron.store.schema import Tables


@dataclass(frozen=True)
class SearchFilters:
    """All given filters must hold; inside one filter any listed value may match (tags: any of them)."""

    source_types: tuple[str, ...] = ()
    source_systems: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    since: datetime | None = None  # source_date_utc >= since
    until: datetime | None = None  # source_date_utc < until

    def __post_init__(self) -> None:
        for name in ("source_types", "source_systems", "tags", "source_ids"):
            if any("\x00" in value for value in getattr(self, name)):
                raise ValueError(f"a {name[:-1].replace('_', ' ')} filter contains a NUL character")

    @classmethod
    def of(
        cls,
        *,
        source_types: Sequence[str] = (),
        source_systems: Sequence[str] = (),
        tags: Sequence[str] = (),
        source_ids: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> SearchFilters:
        return cls(
            tuple(sorted(set(source_types))),
            tuple(sorted(set(source_systems))),
            tuple(sorted(set(tags))),
            tuple(sorted(set(source_ids))),
            _utc(since),
            _utc(until),
        )

    @property
    def empty(self) -> bool:
        return not (
            self.source_types or self.source_systems or self.tags or self.source_ids or self.since or self.until
        )

    def to_json(self) -> dict[str, Any]:
        """What the query log records: only the filters that were given."""
        out: dict[str, Any] = {}
        for name in ("source_types", "source_systems", "tags", "source_ids"):
            values = getattr(self, name)
            if values:
                out[name] = list(values)
        if self.since:
            out["since"] = self.since.isoformat()
        if self.until:
            out["until"] = self.until.isoformat()
        return out

    def condition(self, t: Tables, dialect: str) -> ColumnElement[bool]:
        """A WHERE clause over ``t.chunk`` joined with ``t.source_registry``."""
        c, reg = t.chunk, t.source_registry
        parts: list[ColumnElement[bool]] = []
        if self.source_types:
            parts.append(c.c.source_type.in_(self.source_types))
        if self.source_systems:
            parts.append(reg.c.source_system.in_(self.source_systems))
        if self.source_ids:
            parts.append(c.c.source_id.in_(self.source_ids))
        if self.since:
            parts.append(reg.c.source_date_utc >= self.since)
        if self.until:
            parts.append(reg.c.source_date_utc < self.until)
        if self.tags:
            parts.append(_tags_condition(reg.c.tags_json, self.tags, dialect))
        return and_(true(), *parts)


def _tags_condition(column: Any, tags: tuple[str, ...], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB, array

        condition: ColumnElement[bool] = type_coerce(column, JSONB).has_any(array(list(tags)))
        return condition
    each = func.json_each(column).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value.in_(tags))).correlate_except(each)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
