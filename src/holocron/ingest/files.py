"""Turning files and manifests into raw records; the only place that reads source files from disk."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from holocron.hashing import sha256_text
from holocron.ingest.detect import UnsupportedContent, detect_source_type
from holocron.store.sources import RawRecord, RejectedSource
from holocron.store.types import utcnow
from holocron.vocabulary import FILES_SOURCE_SYSTEM

CONTENT_TYPES = {
    "html": "text/html",
    "mediawiki": "application/vnd.mediawiki+json",
    "openalex": "application/vnd.openalex+json",
    "text": "text/plain",
    "markdown": "text/markdown",
}

DEFAULT_SOURCE_SYSTEM = FILES_SOURCE_SYSTEM


@dataclass(frozen=True)
class FileRef:
    path: Path
    resource_id: str


@dataclass(frozen=True)
class Skipped:
    """Something under an ingested folder that was deliberately not read, and why (always reported)."""

    path: str
    reason: str


OUTSIDE_ROOTS = "a symlink that leads outside the ingested roots (widen them with --allow-root)"


INSIDE_LINK = "a symlink to something in the same folder, which is ingested under its own name"


def within(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path``, with every symlink resolved, lies at or under one of the (resolved) roots."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def resolve_roots(paths: Iterable[Path]) -> list[Path]:
    return [Path(path).expanduser().resolve() for path in paths]


def walk(paths: Iterable[Path], *, allow_roots: Sequence[Path] = ()) -> Iterator[FileRef | Skipped]:
    """Every regular file under the given paths, in a stable order, named relative to what was given.

    Nothing is read from outside the roots: the given paths and ``allow_roots``. A symlink (to a file or a
    folder) that leads elsewhere is skipped and reported; a folder link inside the roots is followed once.
    Hidden files and folders (a leading dot) are left alone.
    """
    paths = list(paths)
    roots = resolve_roots([*paths, *allow_roots])
    for given in paths:
        if given.is_dir():
            yield from _walk_folder(given, roots)
        elif given.is_file():
            yield FileRef(given, given.name)
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")


def _walk_folder(root: Path, roots: Sequence[Path]) -> Iterator[FileRef | Skipped]:
    prefix = root.resolve().name
    seen: set[Path] = set()
    pending = [root]
    found: list[FileRef | Skipped] = []
    while pending:
        folder = pending.pop()
        real = folder.resolve()
        if real in seen:  # two links into the same allowed folder
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            found.append(Skipped(str(folder), f"unreadable folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink() and not within(path, roots):
                found.append(Skipped(str(path), OUTSIDE_ROOTS))
            elif entry.is_symlink() and path.exists() and within(path, [root.resolve()]):
                found.append(Skipped(str(path), INSIDE_LINK))
            elif entry.is_dir():
                pending.append(path)
            elif entry.is_file():
                found.append(FileRef(path, f"{prefix}/{path.relative_to(root).as_posix()}"))
            elif not entry.is_symlink():
                found.append(Skipped(str(path), "not a regular file"))
            else:
                found.append(Skipped(str(path), "a broken symlink"))
    yield from sorted(found, key=lambda item: item.resource_id if isinstance(item, FileRef) else item.path)


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


def read_manifest(
    path: Path, *, max_bytes: int, allow_roots: Sequence[Path] = ()
) -> Iterator[RawRecord | RejectedSource]:
    """The inventory indexer's manifest: ``{version, sources: [{source_id, source_type, lake_uri|content, tags}]}``.

    Its ``lake_uri`` paths (relative, absolute or ``file://``) must stay under the manifest's folder or one
    of ``allow_roots``; inline ``content`` obeys the same size limit as files.
    """
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sources"), list):
        raise ValueError(f"{path}: a manifest is an object with a 'sources' list")
    base = path.parent
    roots = resolve_roots([base, *allow_roots])
    for number, entry in enumerate(manifest["sources"]):
        yield _manifest_entry(entry, number, base, roots, max_bytes)


def _printable(value: str) -> str:
    """A user-supplied id as it can be stored and shown: NUL (which PostgreSQL text refuses) escaped."""
    return value.replace("\x00", "\\x00")


def _manifest_entry(
    entry: Any, number: int, base: Path, roots: Sequence[Path], max_bytes: int
) -> RawRecord | RejectedSource:
    system = "manifest"
    where = f"manifest#{number}"
    if not isinstance(entry, dict) or not entry.get("source_id"):
        return RejectedSource(system, f"entry-{number}", where, "manifest entry has no source_id")
    source_id = str(entry["source_id"])
    if "\x00" in source_id:
        return RejectedSource(system, _printable(source_id), where, "source_id contains a NUL character")
    raw_tags = entry.get("tags") or ()
    if not isinstance(raw_tags, list | tuple):
        return RejectedSource(system, source_id, where, "tags is not a list")
    tags = tuple(str(tag) for tag in raw_tags)
    if any("\x00" in tag for tag in tags):
        return RejectedSource(system, source_id, where, "a tag contains a NUL character")
    declared = entry.get("source_type")
    if "content" in entry:
        text = str(entry["content"])
        if not text.strip():
            return RejectedSource(system, source_id, where, "empty content")
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            return RejectedSource(system, source_id, where, f"content too large: {size:,} bytes (limit {max_bytes:,})")
        if "\x00" in text:
            return RejectedSource(system, source_id, where, "content contains NUL characters (binary data?)")
        source_type = str(declared or "text")
        if source_type not in CONTENT_TYPES:
            return RejectedSource(system, source_id, where, f"unknown source_type {source_type!r}")
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
        return RejectedSource(system, source_id, where, "entry has neither content nor lake_uri")
    parsed = urlparse(str(uri))
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return RejectedSource(system, source_id, where, f"lake_uri names another host: {parsed.netloc!r}")
        file_path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:  # (a one-letter "scheme" is a Windows drive)
        return RejectedSource(system, source_id, where, f"unsupported lake_uri scheme {parsed.scheme!r}")
    else:
        file_path = base / str(uri)
    if not within(file_path, roots):
        return RejectedSource(
            system,
            source_id,
            where,
            "lake_uri is outside the manifest's folder and the allowed roots (widen them with --allow-root)",
        )
    record = read_file(FileRef(file_path, source_id), source_system=system, max_bytes=max_bytes, tags=tags)
    if isinstance(record, RawRecord) and declared and declared in CONTENT_TYPES and declared != record.source_type:
        return RejectedSource(
            system,
            source_id,
            record.request_uri,
            f"declared {declared} but the content is {record.source_type}",
        )
    return record
