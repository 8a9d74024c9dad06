"""Queries through ONNX Runtime stay in the local model's space: the same vectors, within cosine 0.9999.

The export is made from the bundled weights and compared with the torch model on real SciFact abstracts and
claims; a search process that has it never imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from datafiles import scifact_texts
from holocron.embedding import onnx
from holocron.embedding.base import EmbeddingError, Purpose
from holocron.embedding.local import LocalProvider, bundled_model_path
from servers import local_provider

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("model-cache")
    provider = LocalProvider(query_backend="onnx", cache_dir=folder)
    provider.__dict__["model"] = local_provider().model  # the session's loaded model: no second load
    seconds = provider.prepare_query_encoder()
    assert seconds is not None and seconds > 0
    yield folder


def test_the_export_reproduces_the_model_on_real_texts(cache: Path) -> None:
    torch_model = local_provider()
    texts = scifact_texts(abstracts=60, claims=60)
    onnx_provider = LocalProvider(query_backend="onnx", cache_dir=cache)
    fast = onnx_provider.embed(texts, Purpose.QUERY)
    slow = torch_model.embed(texts, Purpose.QUERY)
    assert fast.shape == slow.shape == (len(texts), 384) and len(texts) > 100 and fast.dtype == np.float32
    assert onnx.min_cosine(fast, slow) >= onnx.MIN_COSINE
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)  # normalised, as the model's own
    exported = json.loads(
        (onnx.export_path(cache, torch_model.identity().model_digest).parent / "export.json").read_text()
    )
    assert exported["min_cosine"] >= onnx.MIN_COSINE
    assert onnx_provider.identity() == torch_model.identity()  # the same space


def test_a_text_longer_than_the_window_is_cut_as_the_model_cuts_it(cache: Path) -> None:
    long = " ".join(scifact_texts(abstracts=5, claims=0))  # well over 256 tokens
    provider = LocalProvider(query_backend="onnx", cache_dir=cache)
    fast = provider.embed([long, "short"], Purpose.QUERY)
    slow = local_provider().embed([long, "short"], Purpose.QUERY)
    assert onnx.min_cosine(fast, slow) >= onnx.MIN_COSINE
    one_at_a_time = np.vstack([provider.embed([text], Purpose.QUERY) for text in (long, "short")])  # a search's
    assert onnx.min_cosine(one_at_a_time, slow) >= onnx.MIN_COSINE


def test_auto_waits_for_an_export_and_documents_stay_on_torch(cache: Path, tmp_path: Path) -> None:
    assert LocalProvider(query_backend="auto", cache_dir=tmp_path).query_encoder() is None  # not exported yet
    assert LocalProvider(query_backend="torch", cache_dir=cache).query_encoder() is None
    provider = LocalProvider(query_backend="auto", cache_dir=cache)
    assert provider.query_encoder() is not None
    provider.embed(["a query"], Purpose.QUERY)
    assert "model" not in provider.__dict__  # the query did not load torch's model
    provider.__dict__["model"] = local_provider().model
    provider.embed(["a document"], Purpose.DOCUMENT)  # documents are embedded by the model itself


def test_an_export_that_does_not_reproduce_the_model_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx, "MIN_COSINE", 1.5)  # no export can pass
    provider = LocalProvider(query_backend="onnx", cache_dir=tmp_path)
    provider.__dict__["model"] = local_provider().model
    with pytest.raises(EmbeddingError, match="differs from the model"):
        provider.prepare_query_encoder()
    folder = onnx.export_path(tmp_path, provider.identity().model_digest).parent
    assert sorted(p.name for p in folder.iterdir()) == ["model.lock"]  # no model file, no partial one


def test_only_a_pipeline_reproduced_here_is_exported(tmp_path: Path) -> None:
    assert onnx.exportable(bundled_model_path())
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"type": "sentence_transformers.models.Transformer", "path": ""},
                {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},
            ]
        )
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert not onnx.exportable(tmp_path)
    with pytest.raises(EmbeddingError, match="model folder not found"):
        LocalProvider(model_path=tmp_path / "absent")


PROBE = """
import sys
from holocron.cli.app import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = ("torch", "sentence_transformers", "transformers", "httpx")
print("LOADED", sorted(m for m in heavy if m in sys.modules), code)
"""


def test_an_index_run_exports_and_a_search_process_never_imports_torch(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "capital.txt").write_text("Capitals\n\nWellington is the capital city of New Zealand.")
    (pages / "river.txt").write_text("Rivers\n\nThe Danube flows through ten countries.")
    home, models = tmp_path / "home", tmp_path / "models"
    env = {**os.environ, "HOLOCRON_MODEL_CACHE_DIR": str(models), "HF_HUB_OFFLINE": "1"}

    def holocron(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", PROBE, "--home", str(home), *argv], env=env, capture_output=True, text=True
        )

    assert holocron("ingest", "--no-enqueue", str(pages)).returncode == 0
    indexed = holocron("--device", "cpu", "index", "--json")
    assert indexed.returncode == 0, indexed.stderr
    metrics = json.loads(indexed.stdout[: indexed.stdout.rindex("LOADED")])
    assert metrics["query_export_seconds"] > 0
    assert metrics["device"] == "cpu"  # where the vectors were made, in the run's metrics
    searched = holocron("search", "What is the capital of New Zealand?", "-k", "1", "--json")
    assert searched.returncode == 0, searched.stderr
    assert searched.stdout.strip().endswith("LOADED [] 0")  # no torch, no sentence-transformers, no HTTP client
    hits = json.loads(searched.stdout[: searched.stdout.rindex("LOADED")])["hits"]
    assert "Wellington" in hits[0]["text"]


def test_a_worker_exports_the_query_encoder_after_its_first_embedding_job(tmp_path: Path) -> None:
    from sqlalchemy import select

    from holocron.config import Settings
    from holocron.jobs import Worker, WorkerOptions
    from holocron.service import Holocron

    pages = tmp_path / "pages"
    pages.mkdir()
    for n in range(3):
        (pages / f"p{n}.txt").write_text(f"Page {n}\n\nThe lighthouse number {n} shines over the bay.")
    models = tmp_path / "models"
    provider = LocalProvider(query_backend="auto", cache_dir=models)
    provider.__dict__["model"] = local_provider().model
    settings = Settings(home=tmp_path / "home", model_cache_dir=models, embed_batch_size=1)  # type: ignore[call-arg]
    with Holocron(settings, provider=provider) as holo:
        holo.ingest([pages], enqueue=True)
        report = Worker(holo, WorkerOptions(worker_id="w", drain=True, handle_signals=False)).run()
        assert report.failed == 0
        with holo.db.read() as tx:
            query = select(holo.db.t.run.c.metrics_json).where(holo.db.t.run.c.run_type == "EMBED_CHUNKS")
            exports = [m["query_export_seconds"] for m in tx.execute(query).scalars() if "query_export_seconds" in m]
        assert len(exports) == 1 and exports[0] > 0  # once, by the first job; the later ones find it there
        assert onnx.export_path(models, provider.identity().model_digest).is_file()
        assert provider.query_encoder() is not None
