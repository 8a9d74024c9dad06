"""The lake exchange: what one installation has, as snapshots another can load.

A :class:`RawExchangeRecord` is one snapshot of one thing, named by its **natural key** (the same on every
installation: ``{source_system}:{resource_id}`` for a raw page, ``llm:{run_id}:{artifact_type}`` for an LLM
artifact, ``llm-run:{run_id}`` for an LLM run) and versioned by the sha256 of its payload's canonical JSON
(``orjson``, keys sorted). ``lake.raw_exchange_record`` keeps every version seen, once: the same key and hash
twice is one row, a new hash for a known key a new version.

* :func:`snapshot` streams what the installation has (``ingest.ingest_records``, ``llm.artifact``, ``llm.run``).
* :func:`export_records` writes a snapshot to JSONL (one record a line) or Parquet (the optional extra
  ``holocron[parquet]``), atomically, and records each snapshot in ``lake.raw_exchange_record``.
* :func:`import_records` loads such a file idempotently, a batch per transaction: a bad line is rejected with
  its number and reason and the rest goes on. Raw pages also get their ``ingest.ingest_records`` row back (they
  are not registered as sources); LLM records are kept in ``lake.raw_exchange_record`` only, and a later
  export passes them on (an exchange is transitive: A to B to C).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from holocron.hashing import sha256_bytes
from holocron.store.database import Database, Tx
from holocron.store.exchange import (
    add_exchange_records_in,
    add_ingest_records_in,
    exchange_record_rows,
    exchange_versions,
    existing_ingest_keys,
    existing_llm_run_ids,
    ingest_record_rows,
    llm_artifact_rows,
    llm_run_rows,
)
from holocron.vocabulary import EXCHANGE_FORMATS, EXCHANGE_TYPES

FORMATS = EXCHANGE_FORMATS
RAW_TYPES = frozenset({"http", "mediawiki", "openalex", "file"})
"""Exchange types that are raw pages: an import gives them their ``ingest.ingest_records`` row back."""
LOCAL_SYSTEMS = frozenset({"files", "manifest"})
"""Source systems of local files (``holocron ingest`` of folders and manifests)."""
BATCH = 500
"""Records per read batch and per write transaction."""
BATCH_BYTES = 64 * 2**20
"""The most payload text one batch holds in memory, whatever its count."""
MAX_REJECTIONS_LISTED = 100
PARQUET_HINT = "pip install 'holocron[parquet]'"
NATURAL_KEY_MAX = 1000
SOURCE_ENTITY_MAX = 200
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

INGEST_COLUMNS = (
    "source_system",
    "resource_id",
    "request_uri",
    "request_method",
    "status_code",
    "content_type",
    "payload",
    "response_headers",
    "hash_sha256",
)
AUDIT_COLUMNS = ("request_headers", "requested_at_utc", "responded_at_utc", "duration_ms", "error_message")
"""Kept in a raw page's payload only when set (so that a payload, and its hash, does not change when a column
that it does not use is added)."""
TIME_COLUMNS = frozenset({"fetched_at_utc", "requested_at_utc", "responded_at_utc"})


class ExchangeError(Exception):
    """An export or import that cannot start or go on: a missing file, an unknown format, no pyarrow."""


class ParquetUnavailableError(ExchangeError):
    """Parquet asked for without pyarrow installed."""


class InvalidRecordError(ValueError):
    """Why one line of an exchange file is not a record (the import rejects it and goes on)."""


# --- the record ----------------------------------------------------------------------------------------------


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The bytes a payload's hash is taken of: orjson, keys sorted."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def payload_sha256(payload: Mapping[str, Any]) -> str:
    return sha256_bytes(canonical_json(payload))


@dataclass(frozen=True)
class RawExchangeRecord:
    """One snapshot: what ``natural_key`` was (``payload``) when it was observed."""

    exchange_type: str
    natural_key: str
    payload: dict[str, Any]
    content_sha256: str
    source_entity: str | None
    observed_at_utc: datetime

    @classmethod
    def of(
        cls,
        exchange_type: str,
        natural_key: str,
        payload: dict[str, Any],
        *,
        source_entity: str | None,
        observed_at_utc: datetime,
    ) -> RawExchangeRecord:
        """A record with its hash computed from the payload."""
        return cls(exchange_type, natural_key, payload, payload_sha256(payload), source_entity, observed_at_utc)

    def to_json(self) -> dict[str, Any]:
        """The record as one JSONL line's object: every field, times in ISO 8601."""
        return {
            "exchange_type": self.exchange_type,
            "natural_key": self.natural_key,
            "content_sha256": self.content_sha256,
            "source_entity": self.source_entity,
            "observed_at_utc": iso(self.observed_at_utc),
            "payload": self.payload,
        }

    def row(self) -> dict[str, Any]:
        """The values of its ``lake.raw_exchange_record`` row (without the id and creation time)."""
        return {
            "exchange_type": self.exchange_type,
            "natural_key": self.natural_key,
            "payload_json": self.payload,
            "content_sha256": self.content_sha256,
            "source_entity": self.source_entity,
            "observed_at_utc": self.observed_at_utc,
        }

    @property
    def size(self) -> int:
        """Roughly how much memory it holds (its page text, mostly)."""
        text = self.payload.get("payload")
        return 1024 + (len(text) if isinstance(text, str) else 0)


def iso(value: datetime) -> str:
    """UTC, microseconds always written: one spelling per instant, so that payload hashes are stable."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _jsonable(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def exchange_type_for(source_system: str, request_uri: str) -> str:
    """``mediawiki`` or ``openalex`` when the source system says so, ``file`` for local files, else ``http``."""
    system = source_system.casefold()
    for kind in ("mediawiki", "openalex"):
        if kind in system:
            return kind
    scheme = request_uri.partition(":")[0].casefold()
    if scheme in ("file", "manifest") or system in LOCAL_SYSTEMS:
        return "file"
    return "http"


def raw_page_record(row: Mapping[str, Any]) -> RawExchangeRecord:
    """An ``ingest.ingest_records`` row as a record: what it takes to create the row again."""
    payload: dict[str, Any] = {name: row[name] for name in INGEST_COLUMNS}
    payload["fetched_at_utc"] = iso(row["fetched_at_utc"])
    for name in AUDIT_COLUMNS:
        if row.get(name) is not None:
            payload[name] = _jsonable(row[name])
    return RawExchangeRecord.of(
        exchange_type_for(row["source_system"], row["request_uri"]),
        f"{row['source_system']}:{row['resource_id']}",
        payload,
        source_entity="ingest.ingest_records",
        observed_at_utc=row["fetched_at_utc"],
    )


def llm_artifact_record(row: Mapping[str, Any]) -> RawExchangeRecord:
    """An ``llm.artifact`` row (its content included) with its run's interrogation and model."""
    payload: dict[str, Any] = {}
    for name, value in row.items():
        if name == "artifact_id":  # this installation's own
            continue
        if name.startswith("run_") and name != "run_id":
            payload[name.removeprefix("run_")] = value
        else:
            payload[name] = _jsonable(value)
    return RawExchangeRecord.of(
        "llm",
        f"llm:{row['run_id']}:{row['artifact_type']}",
        payload,
        source_entity="llm.artifact",
        observed_at_utc=row["created_utc"],
    )


def llm_run_record(row: Mapping[str, Any]) -> RawExchangeRecord:
    """An ``llm.run`` row; its job id is this installation's own and is left out."""
    payload = {name: _jsonable(value) for name, value in row.items() if name != "job_id"}
    return RawExchangeRecord.of(
        "llm",
        f"llm-run:{row['run_id']}",
        payload,
        source_entity="llm.run",
        observed_at_utc=row["completed_utc"] or row["started_utc"],
    )


def chosen_types(types: Iterable[str] | None) -> frozenset[str]:
    """The exchange types asked for (all when None); an unknown one is an :class:`ExchangeError`."""
    if types is None:
        return frozenset(EXCHANGE_TYPES)
    wanted = frozenset(types)
    unknown = sorted(wanted - set(EXCHANGE_TYPES))
    if unknown:
        raise ExchangeError(f"unknown exchange type {', '.join(unknown)} (one of {', '.join(EXCHANGE_TYPES)})")
    return wanted


def snapshot(
    db: Database, *, types: Iterable[str] | None = None, batch_size: int = BATCH
) -> Iterator[RawExchangeRecord]:
    """What this installation has, as records, streamed ``batch_size`` rows at a time: every raw page, every
    LLM artifact and every LLM run (of the ``types`` asked for), and the LLM records it was given by another
    installation (:func:`relayed_llm_records`)."""
    wanted = chosen_types(types)
    if wanted & RAW_TYPES:
        for row in ingest_record_rows(db, batch_size=batch_size):
            record = raw_page_record(row)
            if record.exchange_type in wanted:
                yield record
    if "llm" in wanted:
        for row in llm_artifact_rows(db, batch_size=batch_size):
            yield llm_artifact_record(row)
        for row in llm_run_rows(db, batch_size=batch_size):
            yield llm_run_record(row)
        yield from relayed_llm_records(db, batch_size=batch_size)


def run_id_of(natural_key: str) -> str | None:
    """The LLM run an ``llm:{run_id}:{type}`` or ``llm-run:{run_id}`` key names."""
    kind, _, rest = natural_key.partition(":")
    if kind == "llm-run":
        return rest or None
    if kind == "llm":
        return rest.partition(":")[0] or None
    return None


def relayed_llm_records(db: Database, *, batch_size: int = BATCH) -> Iterator[RawExchangeRecord]:
    """The LLM records this installation holds only in ``lake.raw_exchange_record`` (imported from another,
    whose runs are not in ``llm.run`` here), every version: exported on, so that an exchange is transitive."""

    def foreign(rows: list[dict[str, Any]]) -> Iterator[RawExchangeRecord]:
        with db.read() as tx:
            local = existing_llm_run_ids(tx, [i for i in (run_id_of(r["natural_key"]) for r in rows) if i])
        for row in rows:
            if run_id_of(row["natural_key"]) not in local:
                yield RawExchangeRecord(
                    row["exchange_type"],
                    row["natural_key"],
                    row["payload_json"],
                    row["content_sha256"],
                    row["source_entity"],
                    row["observed_at_utc"],
                )

    rows: list[dict[str, Any]] = []
    for row in exchange_record_rows(db, "llm", batch_size=batch_size):
        rows.append(row)
        if len(rows) >= batch_size:
            yield from foreign(rows)
            rows = []
    yield from foreign(rows)


def batched(records: Iterable[RawExchangeRecord], size: int = BATCH) -> Iterator[list[RawExchangeRecord]]:
    """Lists of at most ``size`` records and, past the first, :data:`BATCH_BYTES` of payload."""
    batch: list[RawExchangeRecord] = []
    held = 0
    for record in records:
        if batch and (len(batch) >= size or held + record.size > BATCH_BYTES):
            yield batch
            batch, held = [], 0
        batch.append(record)
        held += record.size
    if batch:
        yield batch


# --- reading a record back -----------------------------------------------------------------------------------


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRecordError(f"{name} is not an ISO 8601 time: {value!r}") from None
    else:
        raise InvalidRecordError(f"{name} is not an ISO 8601 time")
    if parsed.tzinfo is None:
        raise InvalidRecordError(f"{name} has no time zone: {value!r}")
    return parsed.astimezone(UTC)


def _text(value: Any, name: str, *, max_length: int | None = None, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRecordError(f"{name} is not a string")
    if not empty and not value:
        raise InvalidRecordError(f"{name} is empty")
    if max_length is not None and len(value) > max_length:
        raise InvalidRecordError(f"{name} is longer than {max_length} characters")
    return value


def record_from_json(obj: Any) -> RawExchangeRecord:
    """A record from one line's object, checked: its fields, and its hash against its payload."""
    if not isinstance(obj, dict):
        raise InvalidRecordError("not a JSON object")
    missing = [
        name
        for name in ("exchange_type", "natural_key", "content_sha256", "observed_at_utc", "payload")
        if name not in obj
    ]
    if missing:
        raise InvalidRecordError(f"missing {', '.join(missing)}")
    kind = obj["exchange_type"]
    if kind not in EXCHANGE_TYPES:
        raise InvalidRecordError(f"unknown exchange_type {kind!r} (one of {', '.join(EXCHANGE_TYPES)})")
    natural_key = _text(obj["natural_key"], "natural_key", max_length=NATURAL_KEY_MAX)
    payload = obj["payload"]
    if not isinstance(payload, dict):
        raise InvalidRecordError("payload is not a JSON object")
    digest = obj["content_sha256"]
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise InvalidRecordError("content_sha256 is not a sha256 (64 lowercase hex digits)")
    entity = obj.get("source_entity")
    if entity is not None:
        entity = _text(entity, "source_entity", max_length=SOURCE_ENTITY_MAX)
    observed = _time(obj["observed_at_utc"], "observed_at_utc")
    if _has_nul(natural_key) or _has_nul(entity) or _has_nul(payload):
        raise InvalidRecordError("contains a NUL character, which PostgreSQL cannot store")
    try:
        actual = payload_sha256(payload)
    except TypeError as exc:  # (orjson: an integer beyond 64 bits)
        raise InvalidRecordError(f"payload cannot be hashed: {exc}") from None
    if actual != digest:
        raise InvalidRecordError("content_sha256 does not match the payload (the line was corrupted or edited)")
    record = RawExchangeRecord(kind, natural_key, payload, digest, entity, observed)
    if kind in RAW_TYPES:
        ingest_row(record)  # a raw page that could not become its row again is rejected now, not mid-load
    return record


def ingest_row(record: RawExchangeRecord) -> dict[str, Any]:
    """The ``ingest.ingest_records`` row a raw page's record describes."""
    p = record.payload
    system = _text(p.get("source_system"), "payload.source_system", max_length=200)
    resource_id = _text(p.get("resource_id"), "payload.resource_id", max_length=512)
    if record.natural_key != f"{system}:{resource_id}":
        raise InvalidRecordError("natural_key is not payload.source_system:payload.resource_id")
    text = _text(p.get("payload"), "payload.payload", empty=True)
    digest = p.get("hash_sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise InvalidRecordError("payload.hash_sha256 is not a sha256")
    status = p.get("status_code")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise InvalidRecordError("payload.status_code is not a whole number")
    duration = p.get("duration_ms")
    if duration is not None and (not isinstance(duration, int | float) or isinstance(duration, bool)):
        raise InvalidRecordError("payload.duration_ms is not a number")
    error = p.get("error_message")
    row: dict[str, Any] = {
        "source_system": system,
        "resource_id": resource_id,
        "request_uri": _text(p.get("request_uri"), "payload.request_uri"),
        "request_method": _text(p.get("request_method"), "payload.request_method", max_length=10),
        "status_code": status,
        "content_type": _text(p.get("content_type"), "payload.content_type", max_length=100),
        "content_length": len(text.encode("utf-8")),
        "payload": text,
        "response_headers": p.get("response_headers"),
        "hash_sha256": digest,
        "run_id": None,
        "fetched_at_utc": _time(p.get("fetched_at_utc"), "payload.fetched_at_utc"),
        "request_headers": p.get("request_headers"),
        "requested_at_utc": None,
        "responded_at_utc": None,
        "duration_ms": duration,
        "error_message": None if error is None else _text(error, "payload.error_message", empty=True),
        "work_item_id": None,
    }
    for name in ("requested_at_utc", "responded_at_utc"):
        if p.get(name) is not None:
            row[name] = _time(p[name], f"payload.{name}")
    return row


# --- files ---------------------------------------------------------------------------------------------------


class _Sink(Protocol):
    def write(self, records: Sequence[RawExchangeRecord]) -> None: ...

    def close(self) -> None: ...


class _JsonlSink:
    def __init__(self, path: Path) -> None:
        self._handle = path.open("wb")

    def write(self, records: Sequence[RawExchangeRecord]) -> None:
        self._handle.write(b"".join(orjson.dumps(r.to_json()) + b"\n" for r in records))

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported only when Parquet is asked for."""
    try:
        import pyarrow  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import pyarrow.parquet  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        raise ParquetUnavailableError(f"the parquet format needs pyarrow, an optional extra: {PARQUET_HINT}") from None
    return pyarrow, pyarrow.parquet


class _ParquetSink:
    def __init__(self, path: Path) -> None:
        pa, pq = _pyarrow()
        self._pa = pa
        self._schema = pa.schema(
            [
                ("exchange_type", pa.string()),
                ("natural_key", pa.string()),
                ("content_sha256", pa.string()),
                ("source_entity", pa.string()),
                ("observed_at_utc", pa.timestamp("us", tz="UTC")),
                ("payload_json", pa.large_string()),
            ]
        )
        self._writer = pq.ParquetWriter(str(path), self._schema, compression="zstd")

    def write(self, records: Sequence[RawExchangeRecord]) -> None:
        columns = {
            "exchange_type": [r.exchange_type for r in records],
            "natural_key": [r.natural_key for r in records],
            "content_sha256": [r.content_sha256 for r in records],
            "source_entity": [r.source_entity for r in records],
            "observed_at_utc": [r.observed_at_utc for r in records],
            "payload_json": [canonical_json(r.payload).decode("utf-8") for r in records],
        }
        self._writer.write_table(self._pa.Table.from_pydict(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, the line's object or an :class:`InvalidRecordError`) for every line that is not blank."""
    with _opened(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, InvalidRecordError(f"not JSON: {exc}")


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    """(row number, the row's object or an :class:`InvalidRecordError`)."""
    _, pq = _pyarrow()
    try:
        table = pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow's own errors: a truncated or foreign file
        raise ExchangeError(f"{path}: not a readable Parquet file: {exc}") from None
    number = 0
    for batch in table.iter_batches(batch_size=BATCH):
        for row in batch.to_pylist():
            number += 1
            text = row.pop("payload_json", None)
            if not isinstance(text, str):
                yield number, InvalidRecordError("payload_json is missing")
                continue
            try:
                row["payload"] = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield number, InvalidRecordError(f"payload_json is not JSON: {exc}")
                continue
            yield number, row


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """A file opened for reading, an OSError turned into one clear :class:`ExchangeError`."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ExchangeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ExchangeError(f"{path}: a folder, not a file") from None
    except OSError as exc:
        raise ExchangeError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    with handle:
        yield handle


def file_format(path: Path) -> str:
    """``parquet`` for a file that starts with Parquet's magic bytes, else ``jsonl``."""
    with _opened(path) as handle:
        try:
            head = handle.read(4)
        except OSError as exc:
            raise ExchangeError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return "parquet" if head == b"PAR1" else "jsonl"


# --- export and import ---------------------------------------------------------------------------------------


@dataclass
class Counts:
    new: int = 0
    """Natural keys seen for the first time."""
    new_versions: int = 0
    """Known keys with a new content hash."""
    unchanged: int = 0
    """Versions already recorded."""


def record_in(tx: Tx, records: Sequence[RawExchangeRecord]) -> Counts:
    """Record these snapshots in ``lake.raw_exchange_record``; a version already there is a no-op."""
    counts = Counts()
    known = exchange_versions(tx, [(r.exchange_type, r.natural_key) for r in records])
    rows = []
    for record in records:
        hashes = known.setdefault((record.exchange_type, record.natural_key), set())
        if record.content_sha256 in hashes:
            counts.unchanged += 1
            continue
        if hashes:
            counts.new_versions += 1
        else:
            counts.new += 1
        hashes.add(record.content_sha256)
        rows.append(record.row())
    add_exchange_records_in(tx, rows)
    return counts


@dataclass
class ExportReport:
    path: str
    format: str
    exported: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    recorded: int = 0
    """Snapshots new to ``lake.raw_exchange_record`` (first versions and new versions)."""
    already_recorded: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "exported": self.exported,
            "by_type": dict(sorted(self.by_type.items())),
            "recorded": self.recorded,
            "already_recorded": self.already_recorded,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class ImportReport:
    path: str
    format: str
    read: int = 0
    """Valid records read."""
    new: int = 0
    new_versions: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    """The first :data:`MAX_REJECTIONS_LISTED` rejected lines (``rejected`` counts them all)."""
    ingest_records_created: int = 0
    seconds: float = 0.0

    @property
    def imported(self) -> int:
        """Rows added to ``lake.raw_exchange_record``: new keys and new versions."""
        return self.new + self.new_versions

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS_LISTED:
            self.rejections.append(Rejection(line, reason))

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "read": self.read,
            "imported": self.imported,
            "new": self.new,
            "new_versions": self.new_versions,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "rejections": [{"line": r.line, "reason": r.reason} for r in self.rejections],
            "rejections_truncated": self.rejected > len(self.rejections),
            "ingest_records_created": self.ingest_records_created,
            "seconds": round(self.seconds, 4),
        }


def export_records(
    db: Database,
    path: Path | str,
    *,
    fmt: str = "jsonl",
    types: Iterable[str] | None = None,
    batch_size: int = BATCH,
) -> ExportReport:
    """Write this installation's snapshot to ``path`` (a temporary file renamed over it: readers see the old
    file or the whole new one) and record every snapshot in ``lake.raw_exchange_record``."""
    started = time.perf_counter()
    path = Path(path)
    if fmt not in FORMATS:
        raise ExchangeError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    wanted = chosen_types(types)
    if fmt == "parquet":
        _pyarrow()  # fail before anything is read or written
    if not path.parent.is_dir():
        raise ExchangeError(f"{path.parent}: no such folder")
    report = ExportReport(path=str(path), format=fmt)
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as t:
            temporary = Path(t.name)
    except OSError as exc:
        raise ExchangeError(f"{path.parent}: cannot write there: {exc.strerror or exc}") from None
    try:
        sink: _Sink = _ParquetSink(temporary) if fmt == "parquet" else _JsonlSink(temporary)
        try:
            for batch in batched(snapshot(db, types=wanted, batch_size=batch_size), batch_size):
                with db.write() as tx:
                    counts = record_in(tx, batch)
                sink.write(batch)
                report.exported += len(batch)
                report.recorded += counts.new + counts.new_versions
                report.already_recorded += counts.unchanged
                for record in batch:
                    report.by_type[record.exchange_type] = report.by_type.get(record.exchange_type, 0) + 1
        finally:
            sink.close()
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    report.bytes = path.stat().st_size
    report.seconds = time.perf_counter() - started
    return report


def _parsed(items: Iterator[tuple[int, Any]], report: ImportReport) -> Iterator[RawExchangeRecord]:
    for number, item in items:
        try:
            if isinstance(item, InvalidRecordError):
                raise item
            record = record_from_json(item)
        except InvalidRecordError as exc:
            report.reject(number, str(exc))
            continue
        report.read += 1
        yield record


def load_in(tx: Tx, records: Sequence[RawExchangeRecord]) -> tuple[Counts, int]:
    """Record these snapshots and give raw pages their ``ingest.ingest_records`` row where it is missing;
    returns the counts and how many raw records were created."""
    counts = record_in(tx, records)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in records:
        if record.exchange_type in RAW_TYPES:
            row = ingest_row(record)
            rows.setdefault((row["source_system"], row["resource_id"], row["hash_sha256"]), row)
    present = existing_ingest_keys(tx, list(rows))
    missing = [row for key, row in rows.items() if key not in present]
    add_ingest_records_in(tx, missing)
    return counts, len(missing)


def import_records(db: Database, path: Path | str, *, batch_size: int = BATCH) -> ImportReport:
    """Load an exchange file (JSONL or Parquet, told apart by its first bytes), one transaction per batch."""
    started = time.perf_counter()
    path = Path(path)
    fmt = file_format(path)
    report = ImportReport(path=str(path), format=fmt)
    items = _read_parquet(path) if fmt == "parquet" else _read_jsonl(path)
    try:
        for batch in batched(_parsed(items, report), batch_size):
            with db.write() as tx:
                counts, created = load_in(tx, batch)
            report.new += counts.new
            report.new_versions += counts.new_versions
            report.unchanged += counts.unchanged
            report.ingest_records_created += created
    except OSError as exc:  # the file went away or broke while it was read
        raise ExchangeError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    report.seconds = time.perf_counter() - started
    return report
