"""What a source may serve over its life: confined reads, deletion, pruning, broken versions, statuses, identity.

Every case runs on both engines; searches go through the three modes and evidence, so a deleted or broken
source is checked everywhere it could still leak.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from holocron.config import Settings
from holocron.embedding.local import LocalProvider
from holocron.ingest.files import INSIDE_LINK, OUTSIDE_ROOTS
from holocron.retrieval.filters import SearchFilters
from holocron.service import Holocron
from holocron.store.sources import batches_by_bytes
from servers import local_provider

pytestmark = pytest.mark.model

VOLCANO = "Mount Taranaki is a dormant stratovolcano whose symmetrical cone rises above the Taranaki plains."
OBOE = "The oboe is a double-reed woodwind instrument with a clear, penetrating voice in the orchestra."
LIGHTHOUSE = "The Bell Rock Lighthouse stands on a reef in the North Sea and is the oldest sea-washed lighthouse."
SECRET = "root:x:0:0:secret-passphrase-marmalade:/root:/bin/bash"


@pytest.fixture()
def provider() -> LocalProvider:
    return local_provider()


@pytest.fixture()
def holo(db_url: str, tmp_path: Path, provider: LocalProvider) -> Iterator[Holocron]:
    with Holocron(Settings(database_url=db_url, home=tmp_path / "home"), provider=provider) as holocron:  # type: ignore[call-arg]
        yield holocron


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def served_sources(holo: Holocron, query: str) -> set[str]:
    """Every source that any search mode or an evidence bundle returns for the query."""
    found: set[str] = set()
    for mode in ("keyword", "vector", "hybrid"):
        found |= {hit.source_id for hit in holo.search(query, k=10, mode=mode, log=False).hits}
    found |= {item.source_id for item in holo.evidence(query, mode="hybrid", save=False).items}
    return found


def table_counts(holo: Holocron) -> dict[str, int]:
    t = holo.db.t
    tables = {
        "records": t.ingest_records,
        "sources": t.source_registry,
        "chunks": t.chunk,
        "embeddings": t.embedding,
    }
    with holo.db.read() as tx:
        out = {
            name: int(tx.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in tables.items()
        }
        if tx.dialect == "sqlite":
            out["fts"] = int(tx.execute(text("SELECT count(*) FROM vector_chunk_fts_key")).scalar_one())
    return out


# -- reads stay inside the roots ---------------------------------------------------------------------------


def test_manifest_paths_stay_under_its_folder(holo: Holocron, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"passwd": SECRET})
    manifest_dir = write(tmp_path / "manifests", {"inside.txt": VOLCANO})
    entries = [
        {"source_id": "climb", "source_type": "text", "lake_uri": "../outside/passwd"},
        {"source_id": "absolute", "source_type": "text", "lake_uri": str(outside / "passwd")},
        {"source_id": "uri", "source_type": "text", "lake_uri": (outside / "passwd").as_uri()},
        {"source_id": "remote", "source_type": "text", "lake_uri": "file://example.org/etc/passwd"},
        {"source_id": "http", "source_type": "text", "lake_uri": "http://example.org/passwd"},
        {"source_id": "inside", "source_type": "text", "lake_uri": "inside.txt"},
    ]
    manifest = manifest_dir / "sources.json"
    manifest.write_text(json.dumps({"version": 1, "sources": entries}), encoding="utf-8")

    report = holo.ingest_manifest(manifest)
    assert report.registered.new == ["manifest:inside"]
    reasons = {r.source_id: r.reason for r in report.rejected}
    assert set(reasons) == {"manifest:climb", "manifest:absolute", "manifest:uri", "manifest:remote", "manifest:http"}
    assert "outside the manifest's folder" in reasons["manifest:climb"]
    assert "another host" in reasons["manifest:remote"] and "scheme" in reasons["manifest:http"]
    holo.index()
    assert not {s for s in served_sources(holo, "secret passphrase marmalade root") if s != "manifest:inside"}
    with holo.db.read() as tx:
        payloads = list(tx.execute(select(holo.db.t.ingest_records.c.payload)).scalars())
    assert all("marmalade" not in payload for payload in payloads)

    # Widening the roots on purpose lets the same entries in.
    widened = holo.ingest_manifest(manifest, allow_roots=[outside])
    assert sorted(widened.registered.changed) == ["manifest:absolute", "manifest:climb", "manifest:uri"]


def test_inline_content_obeys_the_size_limit(db_url: str, tmp_path: Path, provider: LocalProvider) -> None:
    settings = Settings(database_url=db_url, home=tmp_path / "home", max_source_bytes=1000)  # type: ignore[call-arg]
    manifest = tmp_path / "m.json"
    entries = [{"source_id": "big", "content": "x " * 600}, {"source_id": "small", "content": VOLCANO}]
    manifest.write_text(json.dumps({"sources": entries}), encoding="utf-8")
    with Holocron(settings, provider=provider) as holo:
        report = holo.ingest_manifest(manifest)
    assert report.registered.new == ["manifest:small"]
    assert [(r.source_id, r.reason.split(":")[0]) for r in report.rejected] == [("manifest:big", "content too large")]


def test_symlinks_out_of_the_folder_are_skipped_and_reported(holo: Holocron, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"passwd": SECRET, "more/notes.txt": SECRET})
    corpus = write(tmp_path / "corpus", {"volcano.txt": VOLCANO, "common/oboe.txt": OBOE})
    (corpus / "leak.txt").symlink_to(outside / "passwd")
    (corpus / "leakdir").symlink_to(outside / "more", target_is_directory=True)
    (corpus / "alias.txt").symlink_to(corpus / "volcano.txt")  # inside the root: fine
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)  # inside, and a loop: walked once
    (corpus / "dangling.txt").symlink_to(tmp_path / "nowhere")

    report = holo.ingest([corpus])
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert skipped["leak.txt"] == OUTSIDE_ROOTS and skipped["leakdir"] == OUTSIDE_ROOTS
    assert "dangling.txt" in skipped
    assert skipped["alias.txt"] == INSIDE_LINK and skipped["loop"] == INSIDE_LINK
    assert sorted(report.registered.new) == ["files:corpus/common/oboe.txt", "files:corpus/volcano.txt"]
    with holo.db.read() as tx:
        assert all(SECRET not in p for p in tx.execute(select(holo.db.t.ingest_records.c.payload)).scalars())

    widened = holo.ingest([corpus], allow_roots=[outside])
    assert sorted(widened.registered.new) == ["files:corpus/leak.txt", "files:corpus/leakdir/notes.txt"]


# -- deletion, pruning and broken versions -----------------------------------------------------------------


def test_deleted_sources_serve_nothing_anywhere(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {"volcano.txt": VOLCANO, "oboe.txt": OBOE, "lighthouse.txt": LIGHTHOUSE})
    holo.ingest([corpus])
    holo.index()
    before = table_counts(holo)
    assert "files:corpus/volcano.txt" in served_sources(holo, "dormant stratovolcano cone")

    result = holo.delete_sources(["files:corpus/volcano.txt", "files:corpus/nothing.txt"])
    assert result.deleted == ["files:corpus/volcano.txt"] and result.missing == ["files:corpus/nothing.txt"]
    assert result.chunks_removed >= 1
    assert "files:corpus/volcano.txt" not in served_sources(holo, "dormant stratovolcano cone")
    after = table_counts(holo)
    assert after["sources"] == before["sources"] - 1 and after["records"] == before["records"] - 1
    assert after["chunks"] == before["chunks"] - result.chunks_removed
    assert after["embeddings"] == before["embeddings"] - result.chunks_removed
    if "fts" in after:
        assert after["fts"] == after["chunks"]
    assert holo.source("files:corpus/volcano.txt") is None
    # Deleting again, or indexing in full, brings nothing back.
    assert holo.delete_sources(["files:corpus/volcano.txt"]).missing == ["files:corpus/volcano.txt"]
    holo.index(mode="full")
    assert "files:corpus/volcano.txt" not in served_sources(holo, "dormant stratovolcano cone")


def test_prune_deletes_sources_whose_files_are_gone(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {"volcano.txt": VOLCANO, "oboe.txt": OBOE})
    other = write(tmp_path / "other", {"lighthouse.txt": LIGHTHOUSE})
    holo.ingest([corpus, other])
    holo.index()
    (corpus / "volcano.txt").unlink()

    report = holo.ingest([corpus])
    assert report.missing == ["files:corpus/volcano.txt"] and report.pruned is None
    assert "files:corpus/volcano.txt" in served_sources(holo, "dormant stratovolcano cone")

    report = holo.ingest([corpus], prune=True)
    assert report.pruned is not None and report.pruned.deleted == ["files:corpus/volcano.txt"]
    assert "files:corpus/volcano.txt" not in served_sources(holo, "dormant stratovolcano cone")
    # Sources outside the ingested folder are not touched by its pruning.
    assert holo.source("files:other/lighthouse.txt") is not None


def test_a_source_that_breaks_serves_nothing_unless_kept(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {"volcano.txt": VOLCANO, "oboe.txt": OBOE})
    holo.ingest([corpus])
    holo.index()
    (corpus / "volcano.txt").write_bytes(bytes(range(256)) * 8)

    report = holo.ingest([corpus], keep_last_good=True)
    assert [r.source_id for r in report.rejected] == ["files:corpus/volcano.txt"]
    source = holo.source("files:corpus/volcano.txt")
    assert source is not None and source["status"] == "stale" and "binary" in source["error"]
    assert "files:corpus/volcano.txt" in served_sources(holo, "dormant stratovolcano cone")

    holo.ingest([corpus])  # the default: a broken source serves nothing
    source = holo.source("files:corpus/volcano.txt")
    assert source is not None and source["status"] == "error" and source["chunk_count"] == 0
    assert "files:corpus/volcano.txt" not in served_sources(holo, "dormant stratovolcano cone")
    holo.index(mode="full")
    assert "files:corpus/volcano.txt" not in served_sources(holo, "dormant stratovolcano cone")
    assert holo.sources(status="error").total == 1

    # The good version back: indexed again, although its content hash is the one registered before.
    (corpus / "volcano.txt").write_text(VOLCANO, encoding="utf-8")
    assert holo.ingest([corpus]).registered.changed == ["files:corpus/volcano.txt"]
    holo.index()
    assert "files:corpus/volcano.txt" in served_sources(holo, "dormant stratovolcano cone")


def test_status_tells_chunked_from_indexed(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {"volcano.txt": VOLCANO})
    holo.ingest([corpus])
    assert holo.source("files:corpus/volcano.txt")["status"] == "pending"  # type: ignore[index]
    from holocron.indexer import chunk_sources

    chunk_sources(holo.db, holo.chunk_policy())
    _ = holo.space  # the space exists: statuses can speak of its vectors
    assert holo.source("files:corpus/volcano.txt")["status"] == "chunked"  # type: ignore[index]
    assert holo.sources(status="chunked").total == 1 and holo.sources(status="indexed").total == 0
    holo.index()
    assert holo.source("files:corpus/volcano.txt")["status"] == "indexed"  # type: ignore[index]


# -- identity ----------------------------------------------------------------------------------------------


def test_same_names_in_two_folders_are_two_sources(holo: Holocron, tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"README.md": VOLCANO})
    b = write(tmp_path / "b", {"README.md": OBOE})
    assert holo.ingest([a / "README.md"]).registered.new == ["files:README.md"]
    second = holo.ingest([b / "README.md"])
    assert second.registered.new == ["files:b/README.md"] and not second.registered.changed
    # Each file keeps its id on the next ingest.
    assert holo.ingest([a / "README.md"]).registered.unchanged == ["files:README.md"]
    assert holo.ingest([b / "README.md"]).registered.unchanged == ["files:b/README.md"]


def test_a_subfolder_is_not_registered_twice(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {"wiki/volcano.txt": VOLCANO, "notes/oboe.txt": OBOE})
    holo.ingest([corpus])
    again = holo.ingest([corpus / "wiki"])
    assert again.registered.unchanged == ["files:corpus/wiki/volcano.txt"] and not again.registered.new
    assert holo.sources().total == 2


def test_new_tags_on_unchanged_content_are_kept(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {"volcano.txt": VOLCANO})
    holo.ingest([corpus], tags=["geology"])
    holo.index()
    report = holo.ingest([corpus], tags=["nz", "mountains"])
    assert report.registered.retagged == ["files:corpus/volcano.txt"] and not report.registered.to_index
    assert holo.source("files:corpus/volcano.txt")["tags"] == ["mountains", "nz"]  # type: ignore[index]
    hits = holo.search("stratovolcano", k=3, mode="keyword", filters=SearchFilters.of(tags=["nz"]), log=False).hits
    assert [hit.source_id for hit in hits] == ["files:corpus/volcano.txt"]


# -- NUL characters: one bad source is one clear error, alike on both engines ------------------------------


def test_nul_characters_are_one_clear_error(holo: Holocron, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    entries = [
        {"source_id": "volcano", "content": VOLCANO},
        {"source_id": "nul", "content": "before\u0000after"},
        {"source_id": "tag", "content": OBOE, "tags": ["a\u0000b"]},
        {"source_id": "id\u0000x", "content": OBOE},
        {"source_id": "lighthouse", "content": LIGHTHOUSE},
    ]
    manifest.write_text(json.dumps({"sources": entries}), encoding="utf-8")
    report = holo.ingest_manifest(manifest)
    assert sorted(report.registered.new) == ["manifest:lighthouse", "manifest:volcano"]
    assert {r.source_id for r in report.rejected} == {"manifest:nul", "manifest:tag", "manifest:id\\x00x"}
    assert all("NUL" in r.reason for r in report.rejected)

    # A MediaWiki page whose JSON escapes a NUL: indexed, the NUL replaced one for one.
    page = {"parse": {"title": "Nul", "pageid": 1, "text": "<p>Zero\u0000width marmalade reef.</p>"}}
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "nul.json").write_text(json.dumps(page), encoding="utf-8")
    assert holo.ingest([tmp_path / "pages"]).registered.new == ["files:pages/nul.json"]
    result = holo.index()
    assert result.status == "succeeded", result.errors
    hits = holo.search("marmalade reef", k=3, mode="keyword", log=False).hits
    assert hits and hits[0].source_id == "files:pages/nul.json" and "\x00" not in hits[0].text

    with pytest.raises(ValueError, match="NUL"):
        holo.search("volcano\x00", k=3)
    with pytest.raises(ValueError, match="NUL"):
        holo.search("volcano", k=3, filters=SearchFilters.of(tags=["x\x00"]))


# -- bounded memory -------------------------------------------------------------------------------------------


def test_batches_are_capped_by_bytes(holo: Holocron, tmp_path: Path) -> None:
    corpus = write(tmp_path / "corpus", {f"page{i}.txt": f"{VOLCANO} {i} " + "lava " * (200 * i) for i in range(1, 6)})
    holo.ingest([corpus])
    ids = [f"files:corpus/page{i}.txt" for i in range(1, 6)]
    with holo.db.read() as tx:
        sizes = dict(
            tx.execute(
                select(holo.db.t.source_registry.c.source_id, holo.db.t.ingest_records.c.content_length).join(
                    holo.db.t.ingest_records,
                    holo.db.t.ingest_records.c.ingest_id == holo.db.t.source_registry.c.ingest_id,
                )
            ).all()
        )
        cap = sizes[ids[3]] + sizes[ids[4]] - 1
        batches = batches_by_bytes(tx, ids, max_bytes=cap)
    assert [source_id for batch in batches for source_id in batch] == sorted(ids)
    assert all(len(batch) == 1 or sum(sizes[s] for s in batch) <= cap for batch in batches)
    assert len(batches) >= 2
    # One source larger than the cap still forms its own batch.
    with holo.db.read() as tx:
        assert batches_by_bytes(tx, ids[:2], max_bytes=1) == [[ids[0]], [ids[1]]]
