"""The whole path on real pages: ingest -> extract -> chunk -> embed -> store -> search, on both engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datafiles import data_file
from holocron.config import Settings
from holocron.embedding.local import LocalProvider
from holocron.service import Holocron

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def provider() -> LocalProvider:
    return LocalProvider()


@pytest.fixture()
def small_corpus(tmp_path: Path) -> Path:
    """Three real pages of three kinds: served wiki HTML, MediaWiki API JSON and an OpenAlex work."""
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(data_file("wiki-html/trafilatura__stardewvalleywiki.com.penny.html"), folder / "penny.html")
    shutil.copy(data_file("wiki-html/trafilatura__en.wikipedia.org.tsne.html"), folder / "tsne.html")
    shutil.copy(data_file("openalex/papers__work.json"), folder / "work.json")
    return folder


def make(db_url: str, tmp_path: Path, provider: LocalProvider, **settings: object) -> Holocron:
    return Holocron(
        Settings(database_url=db_url, home=tmp_path / "home", embed_batch_size=32, **settings),  # type: ignore[arg-type]
        provider=provider,
    )


def counts(holo: Holocron) -> dict[str, int]:
    t = holo.db.t
    with holo.db.read() as tx:
        return {
            name: int(tx.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in [
                ("records", t.ingest_records),
                ("sources", t.source_registry),
                ("chunks", t.chunk),
                ("embeddings", t.embedding),
            ]
        }


def test_index_search_and_idempotent_rerun(
    db_url: str, tmp_path: Path, small_corpus: Path, provider: LocalProvider
) -> None:
    with make(db_url, tmp_path, provider) as holo:
        report = holo.ingest([small_corpus])
        assert len(report.registered.new) == 3 and not report.rejected
        first = holo.index()
        assert first.chunking.sources_chunked == 3 and not first.chunking.errors
        assert first.embedding.embeddings_written == first.chunking.chunks_total > 3
        after_first = counts(holo)

        hits = holo.search("When is Penny's birthday?", k=3).hits
        assert hits[0].source_id.endswith("penny.html")
        hits = holo.search("nonlinear dimensionality reduction for visualising high-dimensional data", k=3).hits
        assert hits[0].source_id.endswith("tsne.html")

        # An unchanged rerun: no new rows, zero model calls.
        again = holo.ingest([small_corpus])
        assert len(again.registered.unchanged) == 3 and not again.registered.to_index
        second = holo.index()
        assert second.model_calls == 0
        assert second.chunking.sources_chunked == 0 and second.embedding.embeddings_written == 0
        assert counts(holo) == after_first

        # A full rerun re-chunks everything but still embeds nothing: ids are deterministic.
        full = holo.index(mode="full")
        assert full.chunking.sources_chunked == 3 and full.chunking.chunks_written == 0 and full.model_calls == 0
        assert counts(holo) == after_first


def test_changed_source_replaces_its_chunks(db_url: str, tmp_path: Path, provider: LocalProvider) -> None:
    page = tmp_path / "note.md"
    page.write_text("# Kessel\n\nThe Kessel Run is a hyperspace route used by smugglers.\n")
    with make(db_url, tmp_path, provider) as holo:
        holo.ingest([page])
        holo.index()
        before = counts(holo)
        page.write_text("# Kessel\n\nKessel is a planet known for its spice mines and its famous run.\n")
        changed = holo.ingest([page])
        assert changed.registered.changed == ["files:note.md"]
        report = holo.index()
        assert report.model_calls == 1 and report.chunking.chunks_written == 1
        after = counts(holo)
        assert after["chunks"] == before["chunks"] and after["embeddings"] == before["embeddings"]
        assert after["records"] == before["records"] + 1  # the raw history keeps both versions
        assert "spice" in holo.search("spice mines", k=1).hits[0].text


def test_bad_inputs_are_reported_and_the_rest_is_indexed(db_url: str, tmp_path: Path, provider: LocalProvider) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Hoth\n\nHoth is an ice planet in a remote system.\n")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (folder / "empty.html").write_text("")
    real = data_file("mediawiki-api/en.wikipedia.org/opensearch__new_york.json")
    (folder / "truncated.json").write_text(real.read_text(encoding="utf-8")[:300])
    (folder / "no-text.html").write_text("<html><head><title></title></head><body><script>x()</script></body></html>")
    big = folder / "huge.html"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    with make(db_url, tmp_path, provider, max_source_bytes=20 * 1024 * 1024) as holo:
        report = holo.ingest([folder])
        reasons = {Path(r.request_uri).name: r.reason for r in report.rejected}
        assert set(reasons) == {"image.png", "latin1.txt", "empty.html", "truncated.json", "huge.html"}
        assert "binary" in reasons["image.png"]
        assert "UTF-8" in reasons["latin1.txt"]
        assert "empty" in reasons["empty.html"]
        assert "JSON" in reasons["truncated.json"]
        assert "too large" in reasons["huge.html"]
        indexed = holo.index()
        assert indexed.chunking.sources_chunked == 1
        assert [s for s, _ in indexed.chunking.errors] == ["files:mixed/no-text.html"]
        t = holo.db.t.source_registry
        with holo.db.read() as tx:
            rows = {r.source_id: r for r in tx.execute(select(t))}
        assert rows["files:mixed/good.md"].status == "indexed"
        for name in ["image.png", "latin1.txt", "empty.html", "truncated.json", "huge.html", "no-text.html"]:
            row = rows[f"files:mixed/{name}"]
            assert row.status == "error" and row.error, name
        # Nothing half-written: chunks only for the good page, and each has its embedding.
        assert counts(holo)["chunks"] == counts(holo)["embeddings"] == rows["files:mixed/good.md"].chunk_count


def test_manifest_in_the_inventory_format(db_url: str, tmp_path: Path, provider: LocalProvider) -> None:
    page = tmp_path / "penny.html"
    shutil.copy(data_file("wiki-html/trafilatura__stardewvalleywiki.com.penny.html"), page)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "version": 1,
                "sources": [
                    {"source_id": "penny", "source_type": "html", "lake_uri": "penny.html", "tags": ["wiki"]},
                    {"source_id": "note-1", "source_type": "text", "content": "Bespin is a gas giant.", "tags": []},
                    {"source_id": "broken", "source_type": "text", "content": "   "},
                ],
            }
        )
    )
    with make(db_url, tmp_path, provider) as holo:
        report = holo.index(manifest=manifest)
        assert report.ingest is not None and [r.resource_id for r in report.ingest.rejected] == ["broken"]
        assert report.chunking.sources_chunked == 2
        assert holo.search("gas giant", k=1).hits[0].source_id == "manifest:note-1"
