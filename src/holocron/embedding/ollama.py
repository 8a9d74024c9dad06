"""Embeddings from an Ollama server (or ``holocron serve-embeddings``) over its native API.

``POST /api/embed`` takes a list of inputs per call, with ``truncate``, ``keep_alive`` and ``options`` passed
through. The identity comes from the server itself: the digest ``ollama list`` shows (``/api/tags``), dimensions
and context window from ``/api/show``, the server version from ``/api/version``. ``/api/embed`` returns
L2-normalised vectors. While embedding, the digest is re-read every ``identity_check_s`` seconds: if someone pulled
new weights under the same name, the batch fails instead of mixing two models' vectors in one space.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from holocron.embedding.base import ModelIdentity, PreprocessPolicy, ProviderStats
from holocron.embedding.batching import estimate_tokens
from holocron.embedding.catalog import lookup, preprocess_for
from holocron.embedding.http import BatchedHttpProvider, HttpClient, ModelChangedError, ResponseFormatError, json_matrix
from holocron.httpclient import (
    HttpOptions,
    OllamaModelClient,
    ProviderRequestError,
    positive_int,
    show_number,
)
from holocron.identity import split_model_ref
from holocron.vectors import Matrix

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_MODEL = "nomic-embed-text"
PROBE_TEXT = "dimension probe"


class OllamaProvider(BatchedHttpProvider, OllamaModelClient):
    """An Ollama model as an :class:`~holocron.embedding.base.EmbeddingProvider`; ``http`` takes the
    :class:`~holocron.httpclient.HttpOptions` (``api_key``, ``timeout_s``, ``retry``, ``circuit``, ...)."""

    provider_name = "ollama"
    capability = "embedding"
    missing_capability = "; its vectors may be poor"
    pull_hint = " (or set OLLAMA_EMBED_MODEL to a model it has)"

    def __init__(
        self,
        model: str = DEFAULT_OLLAMA_MODEL,
        base_url: str = DEFAULT_OLLAMA_URL,
        *,
        truncate: bool = True,
        keep_alive: str | int | None = None,
        options: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        batch_tokens: int = 16384,
        preprocess: PreprocessPolicy | None = None,
        identity_check_s: float = 60.0,
        **http: Unpack[HttpOptions],
    ) -> None:
        self.model_name, self.model_tag = split_model_ref(model)
        self.model_ref = f"{self.model_name}:{self.model_tag}"
        self.truncate = truncate
        self.keep_alive = keep_alive
        self.options = dict(options or {})
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.preprocess = preprocess or preprocess_for(self.model_name)
        self.identity_check_s = identity_check_s
        self.http = HttpClient(base_url, name="Ollama", describe_error=self._describe_error, **http)
        self.stats = ProviderStats()
        self.server_version: str | None = None
        self.capabilities: list[str] | None = None
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
        self.server_version = self.version()
        digest = self._digest(self.find_model())
        show = self._show()
        known = lookup(self.model_name)
        dimensions = show_number(show, "embedding_length")
        if dimensions is None:
            dimensions = self._probe_dimensions()
        max_tokens = show_number(show, "context_length")
        if max_tokens is None and known is not None:
            max_tokens = known.max_input_tokens
        num_ctx = positive_int(self.options.get("num_ctx"))
        if num_ctx:
            max_tokens = min(max_tokens, num_ctx) if max_tokens else num_ctx
        return ModelIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag=self.model_tag,
            model_digest=digest,
            dimensions=dimensions,
            max_input_tokens=max_tokens,
            normalized=True,  # /api/embed L2-normalises every vector
            distance_metric="cosine",
            endpoint_url=self.http.shown_url,
            preprocess=self.preprocess,
        )

    def version(self) -> str | None:
        """The server's version, or None for a server without ``/api/version``."""
        try:
            data = self.http.get_json("/api/version")
        except ProviderRequestError:
            return None
        return str(data.get("version")) if isinstance(data, dict) and data.get("version") else None

    def _probe_dimensions(self) -> int:
        vectors = self._request([PROBE_TEXT], count=False)
        if vectors.ndim != 2 or vectors.shape[0] != 1 or vectors.shape[1] < 1:
            raise ResponseFormatError(f"Ollama at {self.http.shown_url}: the dimension probe returned no vector")
        return int(vectors.shape[1])

    def check_unchanged(self, *, force: bool = False) -> None:
        """Fail with :class:`ModelChangedError` when the served digest is no longer this identity's."""
        identity = self.identity()
        now = time.monotonic()
        if not force and (self.identity_check_s < 0 or now - self._checked_at < self.identity_check_s):
            return
        current = self._digest(self.find_model())
        self._checked_at = now
        if current != identity.model_digest:
            raise ModelChangedError(
                f"Ollama model {self.model_ref} changed from {identity.model_digest[:19]} to {current[:19]} "
                "while embedding; nothing from this batch is stored. Run again to embed into the new model's space."
            )

    # -- embedding -----------------------------------------------------------------------------

    def _token_cap(self, identity: ModelIdentity) -> int | None:
        """With truncation on, Ollama cuts long inputs to the window, so they cost at most that much."""
        return identity.max_input_tokens if self.truncate else None

    def _request(self, inputs: list[str], count: bool = True) -> Matrix:
        body: dict[str, Any] = {"model": self.model_ref, "input": inputs, "truncate": self.truncate}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.options:
            body["options"] = self.options
        data = self.http.post_json("/api/embed", body)
        if count:
            self.stats.calls += 1
        if not isinstance(data, dict) or "embeddings" not in data:
            raise ResponseFormatError(f"Ollama at {self.http.shown_url}/api/embed: no 'embeddings' in the answer")
        dims = self._identity.dimensions if self._identity else 0
        return json_matrix(data["embeddings"], dimensions=dims, what=f"Ollama at {self.http.shown_url}/api/embed")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return estimate_tokens(texts)
