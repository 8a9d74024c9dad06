"""Embeddings from an Ollama server (or ``holocron serve-embeddings``) over its native API.

``POST /api/embed`` takes a list of inputs per call, with ``truncate``, ``keep_alive`` and ``options`` passed
through. The identity comes from the server itself: the digest ``ollama list`` shows (``/api/tags``), dimensions
and context window from ``/api/show``, the server version from ``/api/version``. ``/api/embed`` returns
L2-normalised vectors. While embedding, the digest is re-read every ``identity_check_s`` seconds: if someone pulled
new weights under the same name, the batch fails instead of mixing two models' vectors in one space.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from holocron.embedding.base import EmbeddingError, ModelIdentity, PreprocessPolicy, ProviderStats
from holocron.embedding.batching import estimate_tokens
from holocron.embedding.catalog import lookup, parse_model_ref, preprocess_for
from holocron.embedding.http import (
    BatchedHttpProvider,
    CircuitBreaker,
    HttpClient,
    ModelChangedError,
    ModelNotFoundError,
    ProviderRequestError,
    ResponseFormatError,
    RetryPolicy,
    error_text,
    json_matrix,
)
from holocron.vectors import Matrix

log = logging.getLogger(__name__)

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_MODEL = "nomic-embed-text"
PROBE_TEXT = "dimension probe"


class OllamaProvider(BatchedHttpProvider):
    """An Ollama model as an :class:`~holocron.embedding.base.EmbeddingProvider`."""

    provider_name = "ollama"

    def __init__(
        self,
        model: str = DEFAULT_OLLAMA_MODEL,
        base_url: str = DEFAULT_OLLAMA_URL,
        *,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        circuit: CircuitBreaker | None = None,
        truncate: bool = True,
        keep_alive: str | int | None = None,
        options: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        batch_tokens: int = 16384,
        preprocess: PreprocessPolicy | None = None,
        identity_check_s: float = 60.0,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.model_name, self.model_tag = parse_model_ref(model)
        self.model_ref = f"{self.model_name}:{self.model_tag}"
        self.truncate = truncate
        self.keep_alive = keep_alive
        self.options = dict(options or {})
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.preprocess = preprocess or preprocess_for(self.model_name)
        self.identity_check_s = identity_check_s
        self.http = HttpClient(
            base_url,
            name="Ollama",
            timeout_s=timeout_s,
            retry=retry or RetryPolicy(),
            circuit=circuit or CircuitBreaker(),
            describe_error=self._describe_error,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            secrets=(api_key,) if api_key else (),
            transport=transport,
            sleep=sleep,
            rng=rng,
        )
        self.stats = ProviderStats()
        self.server_version: str | None = None
        self.capabilities: list[str] | None = None
        self._identity: ModelIdentity | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OllamaProvider({self.model_ref!r}, {self.http.shown_url!r})"

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> ModelIdentity:
        with self._lock:
            if self._identity is None:
                self._identity = self._discover()
                self._checked_at = time.monotonic()
            return self._identity

    def _discover(self) -> ModelIdentity:
        self.server_version = self.version()
        entry = self.find_model()
        digest = _digest(entry, self.model_ref)
        show = self.http.post_json("/api/show", {"model": self.model_ref})
        info = show.get("model_info") if isinstance(show, dict) else None
        info = info if isinstance(info, dict) else {}
        capabilities = show.get("capabilities") if isinstance(show, dict) else None
        self.capabilities = [str(c) for c in capabilities] if isinstance(capabilities, list) else None
        if self.capabilities is not None and "embedding" not in self.capabilities:
            log.warning(
                "Ollama model %s does not list the 'embedding' capability (%s); its vectors may be poor",
                self.model_ref,
                ", ".join(self.capabilities),
            )
        architecture = info.get("general.architecture")
        known = lookup(self.model_name)
        dimensions = _int(info.get(f"{architecture}.embedding_length")) if architecture else None
        if dimensions is None:
            dimensions = self._probe_dimensions()
        max_tokens = _int(info.get(f"{architecture}.context_length")) if architecture else None
        if max_tokens is None and known is not None:
            max_tokens = known.max_input_tokens
        num_ctx = _int(self.options.get("num_ctx"))
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

    def list_models(self) -> list[dict[str, Any]]:
        """The server's ``/api/tags`` entries: what ``ollama list`` shows."""
        data = self.http.get_json("/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ResponseFormatError(f"Ollama at {self.http.shown_url}/api/tags: no 'models' list")
        return [m for m in models if isinstance(m, dict)]

    def find_model(self) -> dict[str, Any]:
        """This model's ``/api/tags`` entry, or :class:`ModelNotFoundError` saying how to pull it."""
        wanted = self.model_ref.lower()
        for entry in self.list_models():
            names = {str(entry.get(key, "")).lower() for key in ("name", "model")}
            if wanted in names or any(_with_tag(name) == wanted for name in names if name):
                return entry
        raise ModelNotFoundError(self._not_found_message(), status=404)

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
        current = _digest(self.find_model(), self.model_ref)
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

    def close(self) -> None:
        self.http.close()

    # -- errors --------------------------------------------------------------------------------

    def _not_found_message(self) -> str:
        return (
            f"model {self.model_ref} is not on the Ollama server at {self.http.shown_url}: "
            f"run `ollama pull {self.model_ref}` there (or set OLLAMA_EMBED_MODEL to a model it has)"
        )

    def _describe_error(self, response: httpx.Response) -> EmbeddingError:
        detail = self.http.scrub(error_text(response))
        status = response.status_code
        if status == 404 and "not found" in detail.lower():
            return ModelNotFoundError(f"{self._not_found_message()} ({detail})", status=status)
        path = response.request.url.path
        return ProviderRequestError(
            f"Ollama at {self.http.shown_url} refused {path} ({status}): {detail}", status=status
        )


def _with_tag(name: str) -> str:
    model, tag = parse_model_ref(name)
    return f"{model}:{tag}"


def _digest(entry: Mapping[str, Any], model_ref: str) -> str:
    digest = str(entry.get("digest") or "").strip().lower().removeprefix("sha256:")
    if not digest:
        raise ResponseFormatError(f"Ollama lists {model_ref} without a digest")
    return f"sha256:{digest}"


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
