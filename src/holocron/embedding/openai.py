"""Embeddings from any OpenAI-compatible server: hosted APIs, vLLM, llama.cpp server, text-embeddings-inference,
Ollama's ``/v1``, or ``holocron serve-embeddings``.

``POST {base_url}/embeddings`` with ``input`` as a list, ``dimensions`` when configured (models that support
shortening), and ``encoding_format`` ``base64`` by default: little-endian float32 bytes, exact and far cheaper to
parse than JSON floats. The bearer token is read from an environment variable or a secret setting; it lives only
in the request header and is masked in every message.

The OpenAI API does not publish weights digests. When the server's ``/models`` entry carries one (``digest``, as
``serve-embeddings`` adds) it is used; otherwise the digest is recorded as ``unversioned`` and the space is keyed
by the model name. Dimensions and normalisation are measured with one probe call.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal, Unpack

import numpy as np

from holocron.embedding.base import ModelIdentity, PreprocessPolicy, ProviderStats
from holocron.embedding.batching import estimate_tokens
from holocron.embedding.catalog import lookup, preprocess_for
from holocron.embedding.http import BatchedHttpProvider, HttpClient, ModelChangedError, ResponseFormatError, json_matrix
from holocron.httpclient import UNVERSIONED, HttpOptions, OpenAIModelClient, positive_int
from holocron.vectors import Matrix

DEFAULT_OPENAI_URL = "http://localhost:8000/v1"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
PROBE_TEXT = "dimension probe"
# The OpenAI API accepts at most 2048 inputs per request.
MAX_INPUTS_PER_REQUEST = 2048

EncodingFormat = Literal["float", "base64"]


class OpenAIProvider(BatchedHttpProvider, OpenAIModelClient):
    """A model behind ``/v1/embeddings`` as an :class:`~holocron.embedding.base.EmbeddingProvider`; ``http`` takes
    the :class:`~holocron.httpclient.HttpOptions` (``api_key``, ``timeout_s``, ``retry``, ``circuit``, ...)."""

    provider_name = "openai"
    not_found_hint = "; `holocron models` lists what each configured server serves"
    no_key_hint = "no API key was sent: set the variable named by openai_api_key_env (default OPENAI_API_KEY)"

    def __init__(
        self,
        model: str = DEFAULT_OPENAI_MODEL,
        base_url: str = DEFAULT_OPENAI_URL,
        *,
        dimensions: int | None = None,
        encoding_format: EncodingFormat = "base64",
        batch_size: int = 64,
        batch_tokens: int = 16384,
        max_input_tokens: int | None = None,
        preprocess: PreprocessPolicy | None = None,
        identity_check_s: float = 60.0,
        **http: Unpack[HttpOptions],
    ) -> None:
        if encoding_format not in ("float", "base64"):
            raise ValueError("encoding_format is 'float' or 'base64'")
        self.model_id = model.strip()
        self.model_name = self.model_id
        self.model_tag = "latest"
        self.dimensions = dimensions
        self.encoding_format: EncodingFormat = encoding_format
        self.batch_size = min(batch_size, MAX_INPUTS_PER_REQUEST)
        self.batch_tokens = batch_tokens
        self.configured_max_tokens = max_input_tokens
        self.preprocess = preprocess or preprocess_for(self.model_id)
        self.identity_check_s = identity_check_s
        self.http = HttpClient(base_url, name="OpenAI-compatible server", describe_error=self._describe_error, **http)
        self.stats = ProviderStats()
        self._identity: ModelIdentity | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> ModelIdentity:
        with self._lock:
            if self._identity is None:
                self._identity = self._discover()
                self._checked_at = time.monotonic()
            return self._identity

    def _discover(self) -> ModelIdentity:
        entry = self.find_model()
        probe = self._request([PROBE_TEXT], count=False)
        if probe.ndim != 2 or probe.shape[0] != 1 or probe.shape[1] < 1 or not np.isfinite(probe).all():
            raise ResponseFormatError(f"{self.http.name} at {self.http.shown_url}: the probe returned no usable vector")
        dimensions = int(probe.shape[1])
        if self.dimensions is not None and dimensions != self.dimensions:
            raise ResponseFormatError(
                f"{self.http.name} at {self.http.shown_url}: asked for {self.dimensions} dimensions, got {dimensions}"
            )
        known = lookup(self.model_id)
        max_tokens = (
            self.configured_max_tokens
            or positive_int((entry or {}).get("max_model_len"))
            or (known.max_input_tokens if known else None)
        )
        norm = float(np.linalg.norm(probe[0].astype(np.float64)))
        return ModelIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag=self.model_tag,
            model_digest=self._digest(entry),
            dimensions=dimensions,
            max_input_tokens=max_tokens,
            normalized=abs(norm - 1.0) < 1e-3,
            distance_metric="cosine",
            endpoint_url=self.http.shown_url,
            preprocess=self.preprocess,
        )

    def check_unchanged(self, *, force: bool = False) -> None:
        """Fail with :class:`ModelChangedError` when the server reports another digest for the model."""
        identity = self.identity()
        if identity.model_digest == UNVERSIONED:
            return
        now = time.monotonic()
        if not force and (self.identity_check_s < 0 or now - self._checked_at < self.identity_check_s):
            return
        current = self._digest(self.find_model())
        self._checked_at = now
        if current != identity.model_digest:
            raise ModelChangedError(
                f"model {self.model_id} at {self.http.shown_url} changed from {identity.model_digest[:19]} to "
                f"{current[:19]} while embedding; nothing from this batch is stored"
            )

    # -- embedding -----------------------------------------------------------------------------

    def _request(self, inputs: list[str], count: bool = True) -> Matrix:
        body: dict[str, Any] = {"model": self.model_id, "input": inputs, "encoding_format": self.encoding_format}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        data = self.http.post_json("/embeddings", body)
        if count:
            self.stats.calls += 1
        what = f"{self.http.name} at {self.http.shown_url}/embeddings"
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ResponseFormatError(f"{what}: no 'data' list of embedding objects in the answer")
        indexes = [item.get("index", position) for position, item in enumerate(items)]
        if sorted(indexes) != list(range(len(items))):
            raise ResponseFormatError(f"{what}: 'index' values are not 0..{len(items) - 1}: {indexes[:10]}")
        ordered = [item.get("embedding") for _, item in sorted(zip(indexes, items, strict=True), key=lambda p: p[0])]
        dims = self._identity.dimensions if self._identity else 0
        if ordered and all(isinstance(vector, str) for vector in ordered):
            return _base64_matrix([str(vector) for vector in ordered], what)
        return json_matrix(ordered, dimensions=dims, what=what)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return estimate_tokens(texts)


def _base64_matrix(encoded: list[str], what: str) -> Matrix:
    try:
        rows = [np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4") for text in encoded]
    except (binascii.Error, ValueError) as exc:
        raise ResponseFormatError(f"{what}: invalid base64 embedding: {exc}") from None
    widths = {row.shape[0] for row in rows}
    if len(widths) != 1:
        raise ResponseFormatError(f"{what}: vectors of different lengths {sorted(widths)}")
    return np.stack(rows).astype(np.float32, copy=False)
