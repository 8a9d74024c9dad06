"""Building the configured provider: the one place that maps settings to a provider class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from holocron.config import Settings
from holocron.embedding.base import EmbeddingProvider
from holocron.embedding.catalog import preprocess_for

if TYPE_CHECKING:  # imported where used: a local model's search never loads the HTTP client (httpx, asyncio)
    from holocron.embedding.http import CircuitBreaker, RetryPolicy


def retry_policy(settings: Settings) -> RetryPolicy:
    from holocron.embedding.http import RetryPolicy

    return RetryPolicy(
        max_retries=settings.max_retries,
        backoff_base_s=settings.retry_backoff_s,
        backoff_cap_s=settings.retry_backoff_max_s,
        max_retry_after_s=settings.retry_after_max_s,
    )


def circuit_breaker(settings: Settings) -> CircuitBreaker:
    from holocron.embedding.http import CircuitBreaker

    return CircuitBreaker(settings.circuit_failures, settings.circuit_reset_s)


def build_provider(settings: Settings) -> EmbeddingProvider:
    """The provider named by ``embed_provider``, with the model's task prefixes (catalog, or the settings)."""
    model = settings.resolved_embed_model
    preprocess = preprocess_for(
        model, document_prefix=settings.embed_document_prefix, query_prefix=settings.embed_query_prefix
    )
    if settings.embed_provider == "local":
        from holocron.embedding.local import LocalProvider

        return LocalProvider(
            model,
            settings.local_model_path,
            batch_size=settings.embed_batch_size,
            preprocess=preprocess,
            batch_tokens=settings.local_batch_tokens,
            device=settings.device,
            query_backend=settings.local_query_backend,
            cache_dir=settings.resolved_model_cache_dir,
        )
    if settings.embed_provider == "ollama":
        from holocron.embedding.ollama import OllamaProvider

        return OllamaProvider(
            model,
            settings.ollama_base_url,
            timeout_s=settings.request_timeout_s,
            retry=retry_policy(settings),
            circuit=circuit_breaker(settings),
            truncate=settings.ollama_truncate,
            keep_alive=settings.ollama_keep_alive,
            options=settings.ollama_options,
            batch_size=settings.embed_batch_size,
            batch_tokens=settings.embed_batch_tokens,
            preprocess=preprocess,
            identity_check_s=settings.identity_check_s,
        )
    if settings.embed_provider == "openai":
        from holocron.embedding.openai import OpenAIProvider

        return OpenAIProvider(
            model,
            settings.openai_base_url,
            api_key=settings.resolved_openai_api_key(),
            dimensions=settings.openai_dimensions,
            encoding_format=settings.openai_encoding_format,
            timeout_s=settings.request_timeout_s,
            retry=retry_policy(settings),
            circuit=circuit_breaker(settings),
            batch_size=settings.embed_batch_size,
            batch_tokens=settings.embed_batch_tokens,
            preprocess=preprocess,
            identity_check_s=settings.identity_check_s,
        )
    raise ValueError(f"embedding provider {settings.embed_provider!r} is not available")
