"""Building a chat provider: the one place that maps a provider name and its parameters to a provider class."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from holocron.chat.base import ChatOptions, ChatProvider
from holocron.chat.http import CircuitBreaker, RetryPolicy
from holocron.httpclient import HttpOptions

ChatProviderName = Literal["local", "ollama", "openai"]
CHAT_PROVIDERS: tuple[ChatProviderName, ...] = ("local", "ollama", "openai")


def build_chat_provider(
    provider: ChatProviderName,
    model: str | None = None,
    *,
    base_url: str | None = None,
    api_key: SecretStr | str | None = None,
    model_path: Path | None = None,
    cache_dir: Path | None = None,
    timeout_s: float = 120.0,
    retry: RetryPolicy | None = None,
    circuit: CircuitBreaker | None = None,
    options: ChatOptions | None = None,
    threads: int | None = None,
    device: str = "auto",
) -> ChatProvider:
    """``local``: the GGUF at ``model_path`` (default the bundled one), weights cached in ``cache_dir`` (default
    ``<home>/models``); ``ollama`` and ``openai``: ``model`` on the server at ``base_url`` (their defaults when
    None), with the shared retry policy and circuit breaker."""
    if provider == "local":
        from holocron.chat.local import DEFAULT_CHAT_MODEL, LocalChatModel

        return LocalChatModel(
            model_path,
            cache_dir,
            model_name=model or DEFAULT_CHAT_MODEL,
            options=options,
            threads=threads,
            device=device,
        )
    http = HttpOptions(api_key=api_key, timeout_s=timeout_s, retry=retry, circuit=circuit)
    if provider == "ollama":
        from holocron.chat.ollama import DEFAULT_OLLAMA_CHAT_MODEL, DEFAULT_OLLAMA_URL, OllamaChatProvider

        return OllamaChatProvider(
            model or DEFAULT_OLLAMA_CHAT_MODEL, base_url or DEFAULT_OLLAMA_URL, options=options, **http
        )
    if provider == "openai":
        from holocron.chat.openai import DEFAULT_OPENAI_CHAT_MODEL, DEFAULT_OPENAI_URL, OpenAIChatProvider

        return OpenAIChatProvider(
            model or DEFAULT_OPENAI_CHAT_MODEL, base_url or DEFAULT_OPENAI_URL, options=options, **http
        )
    raise ValueError(f"chat provider {provider!r} is not one of {', '.join(CHAT_PROVIDERS)}")
