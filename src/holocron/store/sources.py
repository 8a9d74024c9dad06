"""Raw records (``ingest.ingest_records``) and the source registry that tracks what is indexed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, tuple_, update

from holocron.hashing import source_id_for
from holocron.store.database import Database, Tx, insert_ignoring_conflicts
from holocron.store.types import utcnow


@dataclass(frozen=True)
class RawRecord:
    """One fetched payload, as it arrived, before any extraction."""

    source_system: str
    resource_id: str
    request_uri: str
    source_type: str
    content_type: str
    payload: str
    content_sha256: str
    fetched_at_utc: datetime
    tags: Sequence[str] = ()
    source_date_utc: datetime | None = None

    @property
    def source_id(self) -> str:
        return source_id_for(self.source_system, self.resource_id)


@dataclass(frozen=True)
class RejectedSource:
    """A file that could not become a raw record; the registry keeps the reason."""

    source_system: str
    resource_id: str
    request_uri: str
    reason: str

    @property
    def source_id(self) -> str:
        return source_id_for(self.source_system, self.resource_id)


@dataclass
class RegisterResult:
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def to_index(self) -> list[str]:
        return self.new + self.changed


@dataclass(frozen=True)
class SourcePayload:
    source_id: str
    source_type: str
    source_system: str
    payload: str
    content_sha256: str
    source_ref: dict[str, Any]


def register_records(db: Database, records: Sequence[RawRecord]) -> RegisterResult:
    """Store new and changed payloads in one transaction; an unchanged payload is a no-op."""
    result = RegisterResult()
    if not records:
        return result
    now = utcnow()
    with db.write() as tx:
        reg, raw = tx.t.source_registry, tx.t.ingest_records
        ids = [record.source_id for record in records]
        known = dict(tx.execute(select(reg.c.source_id, reg.c.content_sha256).where(reg.c.source_id.in_(ids))).all())
        fresh = [r for r in records if known.get(r.source_id, "") != r.content_sha256]
        result.unchanged.extend(r.source_id for r in records if known.get(r.source_id, "") == r.content_sha256)
        if not fresh:
            return result
        tx.execute(
            insert_ignoring_conflicts(tx, raw, ["source_system", "resource_id", "hash_sha256"]),
            [
                {
                    "source_system": r.source_system,
                    "resource_id": r.resource_id,
                    "request_uri": r.request_uri,
                    "request_method": "GET",
                    "status_code": None,
                    "content_type": r.content_type,
                    "content_length": len(r.payload.encode("utf-8")),
                    "payload": r.payload,
                    "response_headers": None,
                    "hash_sha256": r.content_sha256,
                    "run_id": None,
                    "fetched_at_utc": r.fetched_at_utc,
                }
                for r in fresh
            ],
        )
        keys = [(r.source_system, r.resource_id, r.content_sha256) for r in fresh]
        ingest_ids = {
            (row.source_system, row.resource_id, row.hash_sha256): row.ingest_id
            for row in tx.execute(
                select(raw.c.ingest_id, raw.c.source_system, raw.c.resource_id, raw.c.hash_sha256).where(
                    tuple_(raw.c.source_system, raw.c.resource_id, raw.c.hash_sha256).in_(keys)
                )
            )
        }
        updates, inserts = [], []
        for r in fresh:
            values = {
                "source_id": r.source_id,
                "source_type": r.source_type,
                "source_system": r.source_system,
                "source_ref_json": {"uri": r.request_uri, "resource_id": r.resource_id},
                "ingest_id": ingest_ids[(r.source_system, r.resource_id, r.content_sha256)],
                "content_sha256": r.content_sha256,
                "tags_json": sorted(set(r.tags)),
                "status": "pending",
                "error": None,
                "source_date_utc": r.source_date_utc,
                "updated_utc": now,
            }
            if r.source_id in known:
                updates.append(values)
                result.changed.append(r.source_id)
            else:
                inserts.append({**values, "chunk_count": 0, "chunks_dropped": 0, "created_utc": now})
                result.new.append(r.source_id)
        if inserts:
            tx.execute(reg.insert(), inserts)
        for values in updates:
            tx.execute(update(reg).where(reg.c.source_id == values["source_id"]).values(**values))
    return result


def record_rejections(db: Database, rejected: Sequence[RejectedSource]) -> None:
    """Keep the reason on the source's row; an earlier good version of it stays indexed."""
    if not rejected:
        return
    now = utcnow()
    with db.write() as tx:
        reg = tx.t.source_registry
        for item in rejected:
            exists = tx.execute(select(reg.c.source_id).where(reg.c.source_id == item.source_id)).first()
            if exists:
                tx.execute(
                    update(reg)
                    .where(reg.c.source_id == item.source_id)
                    .values(status="error", error=item.reason, updated_utc=now)
                )
            else:
                tx.execute(
                    reg.insert().values(
                        source_id=item.source_id,
                        source_type="unknown",
                        source_system=item.source_system,
                        source_ref_json={"uri": item.request_uri, "resource_id": item.resource_id},
                        tags_json=[],
                        status="error",
                        error=item.reason,
                        chunk_count=0,
                        chunks_dropped=0,
                        created_utc=now,
                        updated_utc=now,
                    )
                )


def sources_to_chunk(
    tx: Tx, policy_version: str, *, after: str = "", limit: int = 500, everything: bool = False
) -> list[str]:
    """Sources whose stored content or chunk policy differs from what was chunked (keyset-paginated)."""
    reg = tx.t.source_registry
    query = select(reg.c.source_id).where(reg.c.source_id > after, reg.c.ingest_id.is_not(None))
    if not everything:
        query = query.where(
            or_(
                reg.c.status == "pending",
                reg.c.indexed_content_sha256.is_(None),
                reg.c.indexed_content_sha256 != reg.c.content_sha256,
                reg.c.chunk_policy_version.is_(None),
                reg.c.chunk_policy_version != policy_version,
            )
        )
    return list(tx.execute(query.order_by(reg.c.source_id).limit(limit)).scalars())


def load_payloads(tx: Tx, source_ids: Sequence[str]) -> list[SourcePayload]:
    reg, raw = tx.t.source_registry, tx.t.ingest_records
    rows = tx.execute(
        select(
            reg.c.source_id,
            reg.c.source_type,
            reg.c.source_system,
            reg.c.source_ref_json,
            raw.c.payload,
            raw.c.hash_sha256,
        )
        .join(raw, raw.c.ingest_id == reg.c.ingest_id)
        .where(reg.c.source_id.in_(source_ids))
        .order_by(reg.c.source_id)
    ).all()
    return [
        SourcePayload(
            source_id=row.source_id,
            source_type=row.source_type,
            source_system=row.source_system,
            payload=row.payload,
            content_sha256=row.hash_sha256,
            source_ref=dict(row.source_ref_json or {}),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class IndexedSource:
    """What chunking learned about a source, written back to its registry row."""

    source_id: str
    title: str | None
    content_sha256: str
    policy_version: str
    chunk_count: int
    chunks_dropped: int
    source_date_utc: datetime | None = None


def mark_indexed(tx: Tx, sources: Sequence[IndexedSource]) -> None:
    """One executemany for a whole batch of sources."""
    if not sources:
        return
    reg = tx.t.source_registry
    now = utcnow()
    statement = (
        update(reg)
        .where(reg.c.source_id == bindparam("b_source_id"))
        .values(
            status="indexed",
            error=None,
            title=bindparam("b_title"),
            indexed_content_sha256=bindparam("b_sha"),
            chunk_policy_version=bindparam("b_policy"),
            chunk_count=bindparam("b_count"),
            chunks_dropped=bindparam("b_dropped"),
            source_date_utc=func.coalesce(bindparam("b_date", type_=reg.c.source_date_utc.type), reg.c.source_date_utc),
            last_indexed_utc=bindparam("b_now", type_=reg.c.last_indexed_utc.type),
            updated_utc=bindparam("b_now", type_=reg.c.updated_utc.type),
        )
    )
    tx.execute(
        statement,
        [
            {
                "b_source_id": s.source_id,
                "b_title": s.title,
                "b_sha": s.content_sha256,
                "b_policy": s.policy_version,
                "b_count": s.chunk_count,
                "b_dropped": s.chunks_dropped,
                "b_date": s.source_date_utc,
                "b_now": now,
            }
            for s in sources
        ],
    )


def mark_error(tx: Tx, source_id: str, reason: str) -> None:
    reg = tx.t.source_registry
    tx.execute(
        update(reg).where(reg.c.source_id == source_id).values(status="error", error=reason, updated_utc=utcnow())
    )


def source_json(row: Any) -> dict[str, Any]:
    """A registry row as Holocron shows it everywhere (CLI, API, library): JSON columns decoded and named
    for what they hold, never for how they are stored (``source_ref``, ``tags``)."""
    data = dict(row._mapping)
    data["source_ref"] = data.pop("source_ref_json", None) or {}
    data["tags"] = data.pop("tags_json", None) or []
    return data


def list_sources(tx: Tx, *, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    reg = tx.t.source_registry
    query = select(reg).order_by(reg.c.source_id).limit(limit).offset(offset)
    if status:
        query = query.where(reg.c.status == status)
    return [source_json(row) for row in tx.execute(query)]


def count_sources(tx: Tx, *, status: str | None = None) -> int:
    reg = tx.t.source_registry
    query = select(func.count()).select_from(reg)
    if status:
        query = query.where(reg.c.status == status)
    return int(tx.execute(query).scalar_one())


def get_source(tx: Tx, source_id: str) -> dict[str, Any] | None:
    reg = tx.t.source_registry
    row = tx.execute(select(reg).where(reg.c.source_id == source_id)).first()
    return source_json(row) if row is not None else None


def source_counts(tx: Tx) -> dict[str, int]:
    reg = tx.t.source_registry
    return {row[0]: int(row[1]) for row in tx.execute(select(reg.c.status, func.count()).group_by(reg.c.status))}
