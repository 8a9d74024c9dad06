"""The chat contract: every chat backend (the in-process model, Ollama, OpenAI-compatible servers) looks like this.

A provider answers a conversation (:meth:`ChatProvider.chat`) or a single prompt (:meth:`ChatProvider.generate`),
optionally under a JSON schema, and reports what it did in Ollama's own terms: tokens read and written and the
durations, in nanoseconds, of loading, reading the prompt and writing the answer. With ``on_text`` the answer is
read as it is produced (streaming), each new piece of text handed to the callback, and the same
:class:`ChatResult` is returned at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

import orjson

from holocron.identity import split_model_ref

__all__ = [
    "ChatError",
    "ChatIdentity",
    "ChatMessage",
    "ChatMetrics",
    "ChatOptions",
    "ChatProvider",
    "ChatResult",
    "InvalidOutputError",
    "Messages",
    "TextCallback",
    "split_model_ref",
]

Role = Literal["system", "user", "assistant", "tool"]
DoneReason = Literal["stop", "length", "load"]


class ChatError(RuntimeError):
    """A chat or generate call failed; no answer is returned."""


class InvalidOutputError(ChatError):
    """A schema was given and the answer is not JSON valid under it (a server that ignores the schema); ``text``
    is the answer as it came, for the caller's record and its feedback to the model."""

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class ChatMessage(TypedDict):
    role: Role
    content: str


Messages = Sequence[ChatMessage] | Sequence[Mapping[str, str]]
TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class ChatIdentity:
    """Which model answered: enough to say later exactly which weights wrote a piece of text."""

    provider: str
    model_name: str
    model_tag: str
    model_digest: str  # "sha256:<hex>", or "unversioned" where the server publishes none
    context_length: int | None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class ChatOptions:
    """How to generate. ``None`` leaves a value to the model or server; the defaults make answers reproducible.

    ``temperature`` 0 is greedy decoding; with a positive temperature, ``seed`` makes the sampling repeatable.
    ``num_predict`` is the most tokens written (Ollama's name; OpenAI's ``max_tokens``); ``num_ctx`` the context
    window used (Ollama only; the local model truncates the prompt from the start to fit it).
    """

    num_predict: int | None = 256
    temperature: float | None = 0.0
    seed: int | None = 0
    top_k: int | None = None
    top_p: float | None = None
    num_ctx: int | None = None
    stop: tuple[str, ...] = ()
    keep_alive: str | int | None = None  # Ollama: how long the server keeps the model loaded after the call

    def __post_init__(self) -> None:
        if self.num_predict is not None and self.num_predict < 1:
            raise ValueError("num_predict must be at least 1")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError("temperature must not be negative")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError("top_p must lie in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.num_ctx is not None and self.num_ctx < 1:
            raise ValueError("num_ctx must be at least 1")

    def ollama_options(self) -> dict[str, Any]:
        """The ``options`` object of Ollama's API: only the values that are set."""
        values: dict[str, Any] = {
            "num_predict": self.num_predict,
            "temperature": self.temperature,
            "seed": self.seed,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "num_ctx": self.num_ctx,
            "stop": list(self.stop) or None,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class ChatMetrics:
    """Counts and durations (nanoseconds) as Ollama reports them; None where a server does not say."""

    prompt_eval_count: int | None = None
    eval_count: int | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_duration: int | None = None
    eval_duration: int | None = None

    @property
    def tokens_per_second(self) -> float | None:
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / (self.eval_duration / 1e9)

    def to_json(self) -> dict[str, int]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


@dataclass(frozen=True)
class ChatResult:
    """One answer: its text, the server's final response object as it came, and the metrics."""

    text: str
    model: str
    done_reason: str | None = None  # "stop" (the model ended), "length" (num_predict reached), "load"
    metrics: ChatMetrics = field(default_factory=ChatMetrics)
    raw: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The answer parsed as JSON (an answer under a schema); :class:`InvalidOutputError` when it is not."""
        try:
            return orjson.loads(self.text)
        except orjson.JSONDecodeError as exc:
            raise InvalidOutputError(f"the answer of {self.model} is not JSON ({exc}): {self.text[:200]!r}") from None


@runtime_checkable
class ChatProvider(Protocol):
    """A chat model, local or behind a server."""

    def identity(self) -> ChatIdentity:
        """The model as it is now (probing the server, or reading the weights, when needed)."""
        ...

    def chat(
        self,
        messages: Messages,
        *,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        """The assistant's answer to ``messages``; under ``schema``, JSON valid under it."""
        ...

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        """The answer to one prompt (put in the model's chat template as a user turn); by default, :meth:`chat`
        of the system text, if any, and the prompt as a user turn (a provider that inherits this protocol gets it)."""
        return self.chat(prompt_messages(prompt, system), schema=schema, options=options, on_text=on_text)

    def close(self) -> None: ...


def as_messages(messages: Messages) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` dicts, checked: what every API and chat template takes."""
    out: list[dict[str, str]] = []
    for position, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"message {position}: role must be system, user, assistant or tool, not {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"message {position}: content must be a string")
        out.append({"role": str(role), "content": content})
    if not out:
        raise ValueError("at least one message is needed")
    return out


def prompt_messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """What ``generate`` puts in the chat template: the system text, if any, then the prompt as a user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages
