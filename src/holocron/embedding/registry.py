"""Building the configured provider: the one place that maps settings to a provider class."""

from __future__ import annotations

from holocron.config import Settings
from holocron.embedding.base import EmbeddingProvider


def build_provider(settings: Settings) -> EmbeddingProvider:
    if settings.embed_provider == "local":
        from holocron.embedding.local import LocalProvider

        return LocalProvider(
            settings.resolved_embed_model, settings.local_model_path, batch_size=settings.embed_batch_size
        )
    raise ValueError(f"embedding provider {settings.embed_provider!r} is not available")
