"""The local model's queries through ONNX Runtime: the same weights, exported once, answering in a blink.

A cold ``holocron search`` spent ten seconds importing torch and sentence-transformers to embed one query.
The same network exported to ONNX loads in about half a second with ``onnxruntime`` and the Rust tokenizer.
It stays the same embedding space only because its vectors are the torch model's: every export is checked
against the torch model on :data:`PROBE_TEXTS` before it is kept (cosine at least :data:`MIN_COSINE` on each),
and ``tests/test_onnx_queries.py`` checks the same on real SciFact abstracts and queries.

The export is made by a process that has the torch model loaded anyway (an index run), written next to the
other derived weights under the model cache, named by the weights' digest, and replaced atomically under a file
lock, so that two processes never read half a file and a changed model never uses another model's export.
Only the pipeline whose every step is reproduced here qualifies: a Transformer, mean pooling, and an optional
Normalize, as in all-MiniLM-L6-v2.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from holocron.embedding.base import EmbeddingError
from holocron.vectors import Matrix

log = logging.getLogger(__name__)

MIN_COSINE = 0.9999
"""The least cosine between an export's vector and the torch model's, on every probe text."""
PROBE_TEXTS = (
    "What is the capital city of New Zealand?",
    "Wellington is the capital city of New Zealand, at the southern tip of the North Island.",
    "0-dimensional biomaterials show inductive properties.",
    "a",
    "Ünïcödé, punctuation -- and numbers: 3.14159, 1e-9; [brackets] (parens) {braces}! " * 8,
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FORMAT = 1


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (the ``fast`` extra); without it queries go through torch."""
    return importlib.util.find_spec("onnxruntime") is not None


def exportable(model_dir: Path) -> bool:
    """Whether the folder's pipeline is one this module reproduces: Transformer, mean pooling, [Normalize]."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
        pooling = next(module for module in modules if module["type"].endswith("Pooling"))
        config = json.loads((model_dir / pooling["path"] / "config.json").read_text())
    except (OSError, KeyError, StopIteration, ValueError):
        return False
    modes = [key for key, value in config.items() if key.startswith("pooling_mode_") and value]
    return kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) and modes == [
        "pooling_mode_mean_tokens"
    ]


def export_path(cache_dir: Path, digest: str) -> Path:
    """Where the export of the weights with this digest lives (one per digest, never shared)."""
    return cache_dir / "onnx" / digest.removeprefix("sha256:")[:32] / "model.onnx"


class OnnxQueryEncoder:
    """Tokenize, run the exported network, mean-pool over the attention mask, normalise: sentence-transformers'
    own steps for this pipeline, in numpy."""

    def __init__(self, model_dir: Path, onnx_file: Path, *, max_tokens: int, normalize: bool, threads: int | None):
        import onnxruntime
        from tokenizers import Tokenizer

        self.onnx_file = onnx_file
        self.normalize = normalize
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> Matrix:
        # One query, the usual case, without the batch call: that wakes the tokenizer's thread pool, which costs
        # 1.8 ms beside the network's own threads against 0.05 ms on the calling thread.
        encodings = [self._tokenizer.encode(texts[0])] if len(texts) == 1 else self._tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self._session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        vectors = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        if self.normalize:
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def export_model(
    sentence_transformer: Any, model_dir: Path, target: Path, *, max_tokens: int, normalize: bool
) -> float:
    """Export the loaded model's transformer to ``target``, keep it only if its vectors match; the seconds taken.

    Raises :class:`EmbeddingError` when the export does not reproduce the model (nothing is left behind).
    """
    import torch

    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.with_suffix(".lock")), timeout=600):
        if target.is_file():
            return 0.0  # another process exported it while this one waited
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        transformer = sentence_transformer[0].auto_model

        class Outputs(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = transformer

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                return self.inner(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state

        # Two texts, one padded: the trace follows the general path (a mask with zeros), whatever branch the
        # attention code takes for a batch without padding. The probe below checks padded batches too.
        device = next(transformer.parameters()).device  # traced where the model is; the export runs on CPU
        sample = torch.tensor([[101, 7592, 102, 0], [101, 7592, 2088, 102]], dtype=torch.int64, device=device)
        mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.int64, device=device)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on this exporter; the probe is the check
                torch.onnx.export(
                    Outputs().eval(),
                    (sample, mask, torch.zeros_like(sample)),
                    str(partial),
                    input_names=list(_INPUTS),
                    output_names=["last_hidden_state"],
                    dynamic_axes=axes,
                    opset_version=17,
                    dynamo=False,
                    do_constant_folding=True,
                )
            encoder = OnnxQueryEncoder(model_dir, partial, max_tokens=max_tokens, normalize=normalize, threads=None)
            expected = np.asarray(
                sentence_transformer.encode(list(PROBE_TEXTS), normalize_embeddings=normalize), dtype=np.float32
            )
            worst = min_cosine(encoder.encode(PROBE_TEXTS), expected)
            if worst < MIN_COSINE:
                raise EmbeddingError(f"the ONNX export differs from the model (cosine {worst:.6f} < {MIN_COSINE})")
            (target.parent / "export.json").write_text(
                json.dumps({"format": _FORMAT, "min_cosine": worst, "probe_texts": len(PROBE_TEXTS)}) + "\n"
            )
            partial.replace(target)  # atomic: a reader sees no file or the whole verified one
        except Exception:
            partial.unlink(missing_ok=True)
            raise
    seconds = time.perf_counter() - started
    log.info("exported the query encoder to %s in %.1f s (min cosine %.7f)", target, seconds, worst)
    return seconds


def min_cosine(a: Matrix, b: Matrix) -> float:
    """The least cosine between the rows of two matrices of the same shape."""
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return float((a * b).sum(axis=1).min())
