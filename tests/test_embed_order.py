"""Chunks go to the model in batches of similar length, and the order changes no vector beyond float noise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from holocron.config import Settings
from holocron.embedding.base import Purpose
from holocron.embedding.local import LocalProvider
from holocron.service import Holocron
from holocron.vectors import Matrix

pytestmark = pytest.mark.model


class RecordingProvider(LocalProvider):
    """The real model, remembering the token counts of every batch it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        if purpose is Purpose.DOCUMENT:
            self.batches.append(self.count_tokens(texts))
        return super().embed(texts, purpose)


def test_batches_are_ordered_by_length_and_vectors_match_one_at_a_time(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    sentence = "The ferry crosses the harbour of Wellington every morning. "
    for n in range(12):  # 1 to 34 sentences: lengths from a few tokens to a full window
        (folder / f"doc-{n:02}.txt").write_text(f"Doc {n}\n\n" + sentence * (1 + (n * 7) % 34), encoding="utf-8")
    provider = RecordingProvider()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", home=tmp_path / "home", embed_batch_size=4)
    with Holocron(settings, provider=provider) as holo:
        holo.ingest([folder])
        report = holo.index()
        assert report.embedding.embeddings_written == report.chunking.chunks_total > 12
        flat = [count for batch in provider.batches for count in batch]
        assert flat == sorted(flat), "batches are not in length order"
        assert all(len(batch) <= 4 for batch in provider.batches)
        chunk, embedding = holo.db.t.chunk, holo.db.t.embedding
        with holo.db.read() as tx:
            rows = tx.execute(
                select(chunk.c.content, embedding.c.vector).join(embedding, embedding.c.chunk_id == chunk.c.chunk_id)
            ).all()
    stored = np.vstack([np.asarray(row.vector, dtype=np.float32) for row in rows])
    alone = np.vstack([holo.space.prepare(provider.embed([row.content])) for row in rows])
    assert float(np.abs(stored - alone).max()) < 1e-5
