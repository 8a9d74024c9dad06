"""Turning files and manifests into raw records; the only place that reads source files from disk."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from holocron.hashing import sha256_text
from holocron.ingest.detect import UnsupportedContent, detect_source_type
from holocron.store.sources import RawRecord, RejectedSource
from holocron.store.types import utcnow

CONTENT_TYPES = {
    "html": "text/html",
    "mediawiki": "application/vnd.mediawiki+json",
    "openalex": "application/vnd.openalex+json",
    "text": "text/plain",
    "markdown": "text/markdown",
}

DEFAULT_SOURCE_SYSTEM = "files"


@dataclass(frozen=True)
class FileRef:
    path: Path
    resource_id: str


def walk(paths: Iterable[Path]) -> Iterator[FileRef]:
    """Every regular file under the given paths, in a stable order, named relative to what was given."""
    for root in paths:
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
                yield FileRef(path, f"{root.resolve().name}/{path.relative_to(root).as_posix()}")
        elif root.is_file():
            yield FileRef(root, root.name)
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")


def read_file(
    ref: FileRef, *, source_system: str, max_bytes: int, tags: tuple[str, ...] = ()
) -> RawRecord | RejectedSource:
    """A raw record, or the reason this file cannot be one."""
    uri = ref.path.resolve().as_uri()
    try:
        size = ref.path.stat().st_size
        if size > max_bytes:
            return RejectedSource(
                source_system, ref.resource_id, uri, f"file too large: {size:,} bytes (limit {max_bytes:,})"
            )
        detected = detect_source_type(ref.path.read_bytes(), ref.path.name)
    except UnsupportedContent as exc:
        return RejectedSource(source_system, ref.resource_id, uri, str(exc))
    except OSError as exc:
        return RejectedSource(source_system, ref.resource_id, uri, f"unreadable: {exc.strerror or exc}")
    return RawRecord(
        source_system=source_system,
        resource_id=ref.resource_id,
        request_uri=uri,
        source_type=detected.source_type,
        content_type=detected.content_type,
        payload=detected.text,
        content_sha256=sha256_text(detected.text),
        fetched_at_utc=utcnow(),
        tags=tags,
    )


def read_manifest(path: Path, *, max_bytes: int) -> Iterator[RawRecord | RejectedSource]:
    """The inventory indexer's manifest: ``{version, sources: [{source_id, source_type, lake_uri|content, tags}]}``."""
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sources"), list):
        raise ValueError(f"{path}: a manifest is an object with a 'sources' list")
    base = path.parent
    for number, entry in enumerate(manifest["sources"]):
        yield _manifest_entry(entry, number, base, max_bytes)


def _manifest_entry(entry: Any, number: int, base: Path, max_bytes: int) -> RawRecord | RejectedSource:
    system = "manifest"
    if not isinstance(entry, dict) or not entry.get("source_id"):
        return RejectedSource(system, f"entry-{number}", f"manifest#{number}", "manifest entry has no source_id")
    source_id = str(entry["source_id"])
    tags = tuple(str(tag) for tag in entry.get("tags") or ())
    declared = entry.get("source_type")
    if "content" in entry:
        text = str(entry["content"])
        if not text.strip():
            return RejectedSource(system, source_id, f"manifest#{number}", "empty content")
        source_type = str(declared or "text")
        if source_type not in CONTENT_TYPES:
            return RejectedSource(system, source_id, f"manifest#{number}", f"unknown source_type {source_type!r}")
        return RawRecord(
            source_system=system,
            resource_id=source_id,
            request_uri=f"manifest:{source_id}",
            source_type=source_type,
            content_type=CONTENT_TYPES[source_type],
            payload=text,
            content_sha256=sha256_text(text),
            fetched_at_utc=utcnow(),
            tags=tags,
        )
    uri = entry.get("lake_uri")
    if not uri:
        return RejectedSource(system, source_id, f"manifest#{number}", "entry has neither content nor lake_uri")
    parsed = urlparse(str(uri))
    file_path = Path(unquote(parsed.path)) if parsed.scheme == "file" else base / str(uri)
    record = read_file(FileRef(file_path, source_id), source_system=system, max_bytes=max_bytes, tags=tags)
    if isinstance(record, RawRecord) and declared and declared in CONTENT_TYPES and declared != record.source_type:
        return RejectedSource(
            system,
            source_id,
            record.request_uri,
            f"declared {declared} but the content is {record.source_type}",
        )
    return record
