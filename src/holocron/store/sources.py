"""Raw records (``ingest.ingest_records``) and the source registry that tracks what is indexed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from sqlalchemy import ColumnElement, and_, bindparam, case, delete, func, or_, select, tuple_, update

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
    audit: Mapping[str, Any] | None = None
    """A fetched response's audit columns of ``ingest_records`` (status code, headers, timings, work item,
    run): :data:`AUDIT_COLUMNS` names them. None for a record read from a file."""

    @property
    def source_id(self) -> str:
        return source_id_for(self.source_system, self.resource_id)


AUDIT_COLUMNS = frozenset(
    {
        "request_method",
        "request_headers",
        "requested_at_utc",
        "responded_at_utc",
        "status_code",
        "response_headers",
        "duration_ms",
        "error_message",
        "work_item_id",
        "run_id",
    }
)


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
    retagged: list[str] = field(default_factory=list)
    """Unchanged content whose tags changed: the new tags are stored, nothing is re-indexed."""

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


def unstorable(record: RawRecord) -> str | None:
    """Why a record cannot be stored alike on both engines (PostgreSQL text refuses NUL), or None."""
    if "\x00" in record.payload:
        return "the content contains NUL characters (binary data?)"
    if "\x00" in record.resource_id or any("\x00" in tag for tag in record.tags):
        return "its name or a tag contains a NUL character"
    return None


_Located = TypeVar("_Located", RawRecord, RejectedSource)


def _file_path(uri: str) -> PurePosixPath | None:
    parsed = urlparse(uri)
    return PurePosixPath(unquote(parsed.path)) if parsed.scheme == "file" else None


def settle_file_identities(tx: Tx, items: Sequence[_Located]) -> list[_Located]:
    """A local file is one source wherever it is ingested from: its identity is its location.

    A file already registered (under any root: a parent folder, or on its own) keeps the id it has. A new file
    whose short name is taken by another file (``a/README.md`` then ``b/README.md``) gets a longer name, one
    parent folder at a time, so that two files are never one "changed" source. Ids stay relative: absolute
    paths are not part of any id.
    """
    located = [(item, _file_path(item.request_uri)) for item in items]
    systems = {item.source_system for item, path in located if path is not None}
    if not systems:
        return list(items)
    reg = tx.t.source_registry
    by_uri: dict[tuple[str, str], str] = {}
    uri_of: dict[str, str] = {}
    rows = tx.execute(
        select(reg.c.source_id, reg.c.source_system, reg.c.source_ref_json).where(reg.c.source_system.in_(systems))
    )
    for row in rows:
        ref = row.source_ref_json or {}
        uri, resource_id = ref.get("uri"), ref.get("resource_id")
        if isinstance(uri, str) and isinstance(resource_id, str):
            by_uri.setdefault((row.source_system, uri), resource_id)
            uri_of[row.source_id] = uri
    settled: list[_Located] = []
    for item, path in located:
        if path is None:
            settled.append(item)
            continue
        known = by_uri.get((item.source_system, item.request_uri))
        if known is not None:
            settled.append(replace(item, resource_id=known))
            continue
        resource_id, width, parts = item.resource_id, len(PurePosixPath(item.resource_id).parts), path.parts[1:]
        while width < len(parts) and _taken(uri_of, item, resource_id):
            width += 1
            resource_id = "/".join(parts[-width:])
        by_uri[(item.source_system, item.request_uri)] = resource_id
        uri_of[source_id_for(item.source_system, resource_id)] = item.request_uri
        settled.append(replace(item, resource_id=resource_id))
    return settled


def _taken(uri_of: dict[str, str], item: RawRecord | RejectedSource, resource_id: str) -> bool:
    return uri_of.get(source_id_for(item.source_system, resource_id), item.request_uri) != item.request_uri


def register_records(db: Database, records: Sequence[RawRecord], *, by_location: bool = False) -> RegisterResult:
    """Store new and changed payloads in one transaction; an unchanged payload is a no-op.

    Unchanged content with other tags keeps its chunks and takes the new tags. With ``by_location`` (files
    found by walking folders), a local file's identity is its location (:func:`settle_file_identities`).
    A source given twice counts once (the first).
    """
    if not records:
        return RegisterResult()
    with db.write() as tx:
        return register_in(tx, records, by_location=by_location)


def register_in(tx: Tx, records: Sequence[RawRecord], *, by_location: bool = False) -> RegisterResult:
    """:func:`register_records` inside the caller's write transaction (a crawl stores a response with its
    work item's completion)."""
    result = RegisterResult()
    now = utcnow()
    reg, raw = tx.t.source_registry, tx.t.ingest_records
    if by_location:
        records = settle_file_identities(tx, records)
    records = list({record.source_id: record for record in reversed(records)}.values())[::-1]
    ids = [record.source_id for record in records]
    known_rows = tx.execute(
        select(reg.c.source_id, reg.c.content_sha256, reg.c.tags_json, reg.c.status).where(reg.c.source_id.in_(ids))
    ).all()
    known = {row.source_id: row.content_sha256 for row in known_rows}
    known_tags = {row.source_id: sorted(row.tags_json or []) for row in known_rows}
    known_status = {row.source_id: row.status for row in known_rows}
    # An unchanged payload of a source in error (its file was broken, then restored) is indexed again.
    fresh = [
        r for r in records if known.get(r.source_id, "") != r.content_sha256 or known_status.get(r.source_id) == "error"
    ]
    fresh_ids = {r.source_id for r in fresh}
    for r in records:
        if r.source_id in fresh_ids:
            continue
        result.unchanged.append(r.source_id)
        tags = sorted(set(r.tags))
        if tags != known_tags[r.source_id]:
            tx.execute(update(reg).where(reg.c.source_id == r.source_id).values(tags_json=tags, updated_utc=now))
            result.retagged.append(r.source_id)
    if not fresh:
        return result
    tx.execute(
        insert_ignoring_conflicts(tx, raw, ["source_system", "resource_id", "hash_sha256"]),
        [raw_record_row(r) for r in fresh],
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


def raw_record_row(record: RawRecord) -> dict[str, Any]:
    """The ``ingest_records`` row of a record: its payload, and its audit trail when it was fetched."""
    audit = dict(record.audit or {})
    unknown = set(audit) - AUDIT_COLUMNS
    if unknown:
        raise ValueError(f"not audit columns of ingest_records: {sorted(unknown)}")
    return {
        **dict.fromkeys(AUDIT_COLUMNS),
        "request_method": "GET",
        **audit,
        "source_system": record.source_system,
        "resource_id": record.resource_id,
        "request_uri": record.request_uri,
        "content_type": record.content_type,
        "content_length": len(record.payload.encode("utf-8")),
        "payload": record.payload,
        "hash_sha256": record.content_sha256,
        "fetched_at_utc": record.fetched_at_utc,
    }


def record_rejections(
    db: Database, rejected: Sequence[RejectedSource], *, keep_last_good: bool = False, by_location: bool = False
) -> list[RejectedSource]:
    """Keep the reason on the source's row. A source that turns into an error keeps no servable chunks,
    unless ``keep_last_good``: then its last good chunks stay searchable and it shows as ``stale``.
    Returns the rejections under their settled ids."""
    if not rejected:
        return []
    now = utcnow()
    with db.write() as tx:
        reg = tx.t.source_registry
        if by_location:
            rejected = settle_file_identities(tx, rejected)
        for item in rejected:
            exists = tx.execute(select(reg.c.source_id).where(reg.c.source_id == item.source_id)).first()
            if exists:
                mark_error(tx, item.source_id, item.reason, keep_last_good=keep_last_good)
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
    return list(rejected)


PAYLOAD_BATCH_BYTES = 64 * 2**20
"""The most payload text one batch holds in memory (ingest and chunking), whatever the count limit."""


def sources_to_chunk(
    tx: Tx,
    policy_version: str,
    *,
    after: str = "",
    limit: int = 500,
    everything: bool = False,
    max_bytes: int = PAYLOAD_BATCH_BYTES,
) -> list[str]:
    """Sources whose stored content or chunk policy differs from what was chunked (keyset-paginated), at most
    ``limit`` of them and, past the first, at most ``max_bytes`` of payload. Sources in error are left out."""
    reg, raw = tx.t.source_registry, tx.t.ingest_records
    query = (
        select(reg.c.source_id, raw.c.content_length)
        .join(raw, raw.c.ingest_id == reg.c.ingest_id)
        # A source in error is never chunked from its older payload; a new good version makes it pending.
        .where(reg.c.source_id > after, reg.c.status != "error")
    )
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
    rows = tx.execute(query.order_by(reg.c.source_id).limit(limit)).all()
    return _cap_bytes([(row.source_id, row.content_length) for row in rows], max_bytes)


def _cap_bytes(sized: Sequence[tuple[str, int]], max_bytes: int) -> list[str]:
    taken: list[str] = []
    total = 0
    for source_id, size in sized:
        if taken and total + size > max_bytes:
            break
        taken.append(source_id)
        total += size
    return taken


def batches_by_bytes(
    tx: Tx, source_ids: Sequence[str], *, limit: int = 500, max_bytes: int = PAYLOAD_BATCH_BYTES
) -> list[list[str]]:
    """The given sources in id order, split into batches of at most ``limit`` ids and ``max_bytes`` of payload
    (sources in error or gone are left out)."""
    reg, raw = tx.t.source_registry, tx.t.ingest_records
    ids = sorted(set(source_ids))
    sizes: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        sizes.update(
            tx.execute(
                select(reg.c.source_id, raw.c.content_length)
                .join(raw, raw.c.ingest_id == reg.c.ingest_id)
                .where(reg.c.source_id.in_(part), reg.c.status != "error")
            ).all()
        )
    sized = [(source_id, sizes[source_id]) for source_id in ids if source_id in sizes]
    batches: list[list[str]] = []
    while sized:
        batch = _cap_bytes(sized[:limit], max_bytes)
        batches.append(batch)
        sized = sized[len(batch) :]
    return batches


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


def mark_error(tx: Tx, source_id: str, reason: str, *, keep_last_good: bool = False) -> None:
    """A source in error serves nothing (its chunks, vectors, full-text and index entries go), unless the
    caller keeps the last good version, which then shows as ``stale``."""
    reg = tx.t.source_registry
    values: dict[str, Any] = {"status": "error", "error": reason, "updated_utc": utcnow()}
    if not keep_last_good:
        _delete_chunks_of(tx, [source_id])
        values.update(chunk_count=0, indexed_content_sha256=None, chunk_policy_version=None)
    tx.execute(update(reg).where(reg.c.source_id == source_id).values(**values))


def _delete_chunks_of(tx: Tx, source_ids: Sequence[str]) -> int:
    """Chunks of these sources and everything hanging off them: embeddings (and so the ANN change log) and
    full-text rows, which the store's triggers and cascades keep in step within this transaction."""
    c, e = tx.t.chunk, tx.t.embedding
    removed = 0
    for start in range(0, len(source_ids), 500):
        part = list(source_ids[start : start + 500])
        chunk_ids = select(c.c.chunk_id).where(c.c.source_id.in_(part)).scalar_subquery()
        tx.execute(delete(e).where(e.c.chunk_id.in_(chunk_ids)))
        removed += tx.execute(delete(c).where(c.c.source_id.in_(part))).rowcount or 0
    return removed


@dataclass
class DeleteResult:
    """What :func:`delete_sources` removed."""

    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    chunks_removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "missing": self.missing, "chunks_removed": self.chunks_removed}


def delete_sources(db: Database, source_ids: Sequence[str]) -> DeleteResult:
    """Remove sources and everything stored of them (raw records, chunks, embeddings, full-text rows and
    vector-index entries) in one transaction; ids that are not registered are reported, not an error."""
    result = DeleteResult()
    wanted = list(dict.fromkeys(source_ids))
    if not wanted:
        return result
    with db.write() as tx:
        reg, raw = tx.t.source_registry, tx.t.ingest_records
        rows = tx.execute(
            select(reg.c.source_id, reg.c.source_system, reg.c.source_ref_json).where(reg.c.source_id.in_(wanted))
        ).all()
        found = {row.source_id for row in rows}
        result.missing = [source_id for source_id in wanted if source_id not in found]
        result.deleted = [source_id for source_id in wanted if source_id in found]
        if not found:
            return result
        result.chunks_removed = _delete_chunks_of(tx, result.deleted)
        tx.execute(delete(reg).where(reg.c.source_id.in_(result.deleted)))
        for row in rows:
            resource_id = (row.source_ref_json or {}).get("resource_id")
            if isinstance(resource_id, str):
                tx.execute(
                    delete(raw).where(raw.c.source_system == row.source_system, raw.c.resource_id == resource_id)
                )
    return result


def file_sources_under(tx: Tx, source_system: str, root_uri: str) -> dict[str, str]:
    """``{source_id: file uri}`` of the registered files of ``source_system`` at or below ``root_uri``."""
    reg = tx.t.source_registry
    prefix = root_uri.rstrip("/") + "/"
    found: dict[str, str] = {}
    for row in tx.execute(select(reg.c.source_id, reg.c.source_ref_json).where(reg.c.source_system == source_system)):
        uri = (row.source_ref_json or {}).get("uri")
        if isinstance(uri, str) and (uri == root_uri or uri.startswith(prefix)):
            found[row.source_id] = uri
    return found


# -- status as users see it -------------------------------------------------------------------------


def _visible_status(tx: Tx, embedding_space_id: int | None) -> ColumnElement[str]:
    reg, c, e = tx.t.source_registry, tx.t.chunk, tx.t.embedding
    has_chunks = select(c.c.chunk_id).where(c.c.source_id == reg.c.source_id).exists()
    whens: list[tuple[ColumnElement[bool], str]] = [(and_(reg.c.status == "error", has_chunks), "stale")]
    if embedding_space_id is not None:
        unembedded = (
            select(c.c.chunk_id)
            .where(
                c.c.source_id == reg.c.source_id,
                ~select(e.c.embedding_id)
                .where(
                    e.c.chunk_id == c.c.chunk_id,
                    e.c.embedding_space_id == embedding_space_id,
                    e.c.input_content_sha256 == c.c.content_sha256,
                )
                .exists(),
            )
            .exists()
        )
        whens.append((and_(reg.c.status == "indexed", unembedded), "chunked"))
    return case(*whens, else_=reg.c.status).label("status")


def source_json(row: Any) -> dict[str, Any]:
    """A registry row as Holocron shows it everywhere (CLI, API, library): JSON columns decoded and named
    for what they hold, never for how they are stored (``source_ref``, ``tags``)."""
    data = dict(row._mapping)
    data["source_ref"] = data.pop("source_ref_json", None) or {}
    data["tags"] = data.pop("tags_json", None) or []
    return data


def _sources_query(tx: Tx, embedding_space_id: int | None, status: str | None) -> Any:
    reg = tx.t.source_registry
    visible = _visible_status(tx, embedding_space_id)
    columns = [column for column in reg.c if column.name != "status"]
    query = select(*columns, visible)
    if status:
        query = query.where(visible == status)
    return query


def list_sources(
    tx: Tx,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
    embedding_space_id: int | None = None,
) -> list[dict[str, Any]]:
    """Registry rows with their visible status (see :data:`VISIBLE_STATUSES`) in ``embedding_space_id``."""
    reg = tx.t.source_registry
    query = _sources_query(tx, embedding_space_id, status).order_by(reg.c.source_id).limit(limit).offset(offset)
    return [source_json(row) for row in tx.execute(query)]


def count_sources(tx: Tx, *, status: str | None = None, embedding_space_id: int | None = None) -> int:
    query = _sources_query(tx, embedding_space_id, status).subquery()
    return int(tx.execute(select(func.count()).select_from(query)).scalar_one())


def get_source(tx: Tx, source_id: str, *, embedding_space_id: int | None = None) -> dict[str, Any] | None:
    reg = tx.t.source_registry
    row = tx.execute(_sources_query(tx, embedding_space_id, None).where(reg.c.source_id == source_id)).first()
    return source_json(row) if row is not None else None


def source_counts(tx: Tx, *, embedding_space_id: int | None = None) -> dict[str, int]:
    query = _sources_query(tx, embedding_space_id, None).subquery()
    rows = tx.execute(select(query.c.status, func.count()).group_by(query.c.status))
    return {row[0]: int(row[1]) for row in rows}
