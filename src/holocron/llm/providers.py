"""The configured chat model: the one place that maps settings to a chat provider."""

from __future__ import annotations

from holocron.chat.base import ChatOptions, ChatProvider
from holocron.chat.http import CircuitBreaker
from holocron.chat.registry import build_chat_provider
from holocron.config import Settings
from holocron.embedding.registry import retry_policy


def default_chat_options(settings: Settings) -> ChatOptions:
    """The configured generation options (every interrogation's options are laid over these)."""
    return ChatOptions(
        num_predict=settings.chat_num_predict, temperature=settings.chat_temperature, seed=settings.chat_seed
    )


def chat_model_name(settings: Settings) -> str | None:
    if settings.chat_model:
        return settings.chat_model
    if settings.chat_provider == "ollama":
        return settings.ollama_chat_model
    return None


def build_chat_from_settings(settings: Settings) -> ChatProvider:
    """``chat_provider`` with its model, server, weights cache, timeout and the shared retry machinery."""
    base_url = settings.chat_base_url
    if base_url is None and settings.chat_provider == "ollama":
        base_url = settings.ollama_base_url
    if base_url is None and settings.chat_provider == "openai":
        base_url = settings.openai_base_url
    return build_chat_provider(
        settings.chat_provider,
        chat_model_name(settings),
        base_url=base_url,
        api_key=settings.resolved_openai_api_key() if settings.chat_provider == "openai" else None,
        model_path=settings.chat_model_path,
        cache_dir=settings.resolved_model_cache_dir,
        timeout_s=settings.chat_timeout_s,
        retry=retry_policy(settings),
        circuit=CircuitBreaker(settings.circuit_failures, settings.circuit_reset_s),
        options=default_chat_options(settings),
        threads=settings.chat_threads,
        device=settings.device,
    )
