"""The Ollama and OpenAI-compatible chat clients: against ``holocron serve-models`` on the real local model over
HTTP on 127.0.0.1 (streaming and not, with a schema, the same answers as the model in process), and against a
scripted server for the faults: 5xx, 429, a dropped connection and a timeout are retried; a 4xx is not; a stream
that breaks off fails; the circuit opens; the bearer key never shows in a message, a repr or a log.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from chat_servers import ChatScript, chat_model, model_server, scripted_chat_server
from holocron import httpclient
from holocron.chat.base import ChatError, ChatOptions, ChatProvider, InvalidOutputError
from holocron.chat.http import (
    CircuitBreaker,
    CircuitOpenError,
    ModelNotFoundError,
    ProviderRequestError,
    ProviderUnavailableError,
    RetryPolicy,
)
from holocron.chat.local import LocalChatModel
from holocron.chat.ollama import OllamaChatProvider
from holocron.chat.openai import OpenAIChatProvider
from holocron.chat.registry import build_chat_provider
from holocron.embedding.base import EmbeddingError
from holocron.embedding.server import create_app
from servers import UvicornThread, local_provider

KINDS = ["ollama", "openai"]
SHORT = ChatOptions(num_predict=16)
FAST = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.05)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
Client = OllamaChatProvider | OpenAIChatProvider


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Literal["yes", "no"]


def client(kind: str, url: str, model: str, **more: object) -> Client:
    if kind == "ollama":
        return OllamaChatProvider(model, url, **more)  # type: ignore[arg-type]
    return OpenAIChatProvider(model, f"{url}/v1", **more)  # type: ignore[arg-type]


# --- against the real local server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> LocalChatModel:
    return chat_model()


@pytest.fixture(scope="module")
def url() -> str:
    return model_server().url


@pytest.mark.model
@pytest.mark.parametrize("kind", KINDS)
def test_the_identity_is_the_servers(kind: str, url: str, local: LocalChatModel) -> None:
    provider = client(kind, url, local.model_name)
    assert isinstance(provider, ChatProvider)
    identity = provider.identity()
    assert identity.provider == kind and identity.endpoint_url
    assert identity.model_digest == f"sha256:{hashlib.sha256(local.gguf_path.read_bytes()).hexdigest()}"
    assert identity.context_length == 8192
    if isinstance(provider, OllamaChatProvider):
        assert provider.capabilities == ["completion"]
        assert provider.details["quantization_level"] == "Q4_1"


@pytest.mark.model
@pytest.mark.parametrize("kind", KINDS)
def test_answers_over_http_are_the_models_own(kind: str, url: str, local: LocalChatModel) -> None:
    provider = client(kind, url, local.model_name)
    answer = provider.chat(QUESTION, options=SHORT)
    assert answer.text == local.chat(QUESTION, options=SHORT).text
    assert "Paris" in answer.text and answer.done_reason == "stop"
    assert answer.metrics.prompt_eval_count and answer.metrics.eval_count
    if kind == "ollama":
        assert answer.metrics.eval_duration and answer.metrics.prompt_eval_duration
        assert answer.raw["done"] is True
    else:
        assert answer.raw["usage"]["completion_tokens"] == answer.metrics.eval_count


@pytest.mark.model
@pytest.mark.parametrize("kind", KINDS)
def test_streamed_answers_match_and_carry_the_metrics(kind: str, url: str, local: LocalChatModel) -> None:
    provider = client(kind, url, local.model_name)
    pieces: list[str] = []
    streamed = provider.chat(QUESTION, options=SHORT, on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text
    assert streamed.text == local.chat(QUESTION, options=SHORT).text
    assert streamed.done_reason == "stop"
    assert streamed.metrics.eval_count == local.chat(QUESTION, options=SHORT).metrics.eval_count


@pytest.mark.model
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_schema_is_sent_and_honoured(kind: str, stream: bool, url: str, local: LocalChatModel) -> None:
    provider = client(kind, url, local.model_name)
    pieces: list[str] = []
    result = provider.generate(
        "Is Paris in France? Answer in JSON.",
        schema=Verdict.model_json_schema(),
        options=ChatOptions(num_predict=24),
        on_text=pieces.append if stream else None,
    )
    assert Verdict.model_validate_json(result.text)
    assert not stream or "".join(pieces) == result.text


@pytest.mark.model
def test_the_api_key_is_required_and_never_shown(local: LocalChatModel, caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-chat-SECRET-42424242"
    caplog.set_level(logging.DEBUG)
    server = UvicornThread(create_app(local_provider(), chat=local, api_key=key, load_on_start=False))
    try:
        good = OpenAIChatProvider(local.model_name, f"{server.url}/v1", api_key=key)
        assert good.chat(QUESTION, options=ChatOptions(num_predict=4)).metrics.eval_count
        wrong = OpenAIChatProvider(local.model_name, f"{server.url}/v1", api_key=key[::-1])
        with pytest.raises(ProviderRequestError, match="check the API key") as raised:
            wrong.chat(QUESTION, options=SHORT)
        assert raised.value.status == 401
    finally:
        server.stop()
    for text in (str(raised.value), repr(good), repr(good.http), repr(wrong), caplog.text):
        assert key not in text and key[::-1] not in text


# --- faults, against the scripted server ------------------------------------------------------------------------


@pytest.fixture()
def scripted() -> Iterator[tuple[str, ChatScript]]:
    with scripted_chat_server() as running:
        yield running


def faulty(kind: str, url: str, **more: object) -> Client:
    options: dict[str, object] = {"retry": FAST, "circuit": CircuitBreaker(100, 30.0), "timeout_s": 5.0, **more}
    provider = client(kind, url, "fake-chat", **options)
    provider.identity()
    return provider


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fault", ["status:500", "status:503", "drop", "429:0"])
def test_transient_failures_are_retried(kind: str, stream: bool, fault: str, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    provider = faulty(kind, url)
    script.set(fault)
    pieces: list[str] = []
    result = provider.chat(QUESTION, schema=Verdict.model_json_schema(), on_text=pieces.append if stream else None)
    assert result.json() == {"label": "yes"}
    assert not stream or "".join(pieces) == result.text
    assert len(script.chat_requests) == 2 and provider.http.retries == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_timeout_is_retried_then_reported(kind: str, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    provider = faulty(kind, url, timeout_s=0.3, retry=RetryPolicy(max_retries=1, backoff_base_s=0.01))
    script.set("slow:1", "ok")
    assert provider.chat(QUESTION).text == script.answer  # the second attempt answers in time
    script.set(then="slow:1")
    with pytest.raises(ProviderUnavailableError, match=r"no answer within 0\.3s.*gave up after 2 attempts"):
        provider.chat(QUESTION)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 401, 422])
def test_a_4xx_is_not_retried(kind: str, status: int, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    provider = faulty(kind, url)
    script.set(f"status:{status}")
    with pytest.raises(ProviderRequestError) as raised:
        provider.chat(QUESTION)
    assert raised.value.status == status
    assert len(script.chat_requests) == 1 and provider.http.retries == 0


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_model_says_so(kind: str, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    with pytest.raises(ModelNotFoundError, match="ollama pull other:latest" if kind == "ollama" else "it serves"):
        client(kind, url, "other", retry=FAST).identity()
    provider = faulty(kind, url)
    script.set("notfound")
    with pytest.raises(ModelNotFoundError):
        provider.chat(QUESTION)
    assert len(script.chat_requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_that_breaks_off_fails(kind: str, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    provider = faulty(kind, url)
    script.set("cut")
    pieces: list[str] = []
    with pytest.raises(ProviderUnavailableError, match=r"broke off|ended without"):
        provider.chat(QUESTION, on_text=pieces.append)
    assert pieces == [script.answer[: len(script.answer) // 2]]  # what came before the break was handed on
    assert len(script.chat_requests) == 1  # a half-read answer is never retried behind the caller's back


@pytest.mark.parametrize("kind", KINDS)
def test_free_text_under_a_schema_is_refused(kind: str, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    provider = faulty(kind, url)
    script.set("text")
    with pytest.raises(InvalidOutputError, match="not JSON"):
        provider.chat(QUESTION, schema=Verdict.model_json_schema())
    script.set("text")
    assert provider.chat(QUESTION).text == "this is not JSON"  # without a schema, text is the answer


@pytest.mark.parametrize("kind", KINDS)
def test_the_circuit_opens_and_fails_fast(kind: str, scripted: tuple[str, ChatScript]) -> None:
    url, script = scripted
    now = [0.0]
    provider = faulty(
        kind,
        url,
        retry=RetryPolicy(max_retries=1, backoff_base_s=0.01),
        circuit=CircuitBreaker(failure_threshold=3, reset_after_s=10.0, clock=lambda: now[0]),
    )
    script.set(then="status:500")
    with pytest.raises(ProviderUnavailableError) as first:  # attempts 1 and 2: retries exhausted
        provider.chat(QUESTION)
    assert not isinstance(first.value, CircuitOpenError)
    with pytest.raises(CircuitOpenError):  # attempt 3 is the third consecutive failure: the circuit opens
        provider.chat(QUESTION)
    with pytest.raises(CircuitOpenError, match="failing fast"):  # open: the server is not asked
        provider.chat(QUESTION)
    assert len(script.chat_requests) == 3
    script.set(then="ok")
    now[0] = 10.0  # half-open: one trial goes through and closes the circuit
    assert provider.chat(QUESTION).text == script.answer
    assert provider.http.circuit.state == "closed"


def test_chat_errors_are_chat_errors_and_the_shared_ones() -> None:
    for error in (ProviderUnavailableError, CircuitOpenError, ProviderRequestError, ModelNotFoundError):
        assert issubclass(error, ChatError) and not issubclass(error, EmbeddingError)
    assert issubclass(CircuitOpenError, httpclient.CircuitOpenError)
    assert issubclass(ModelNotFoundError, httpclient.ModelNotFoundError)
    assert issubclass(ProviderUnavailableError, httpclient.ProviderUnavailableError)


def test_the_bearer_key_never_appears_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-test-CHAT-SECRET-0123456789"
    caplog.set_level(logging.DEBUG)
    with scripted_chat_server(ChatScript(api_key=key, echo_key_in_errors=True)) as (url, script):
        provider = faulty("openai", url, api_key=key)
        script.set("status:500")
        assert provider.chat(QUESTION).text == script.answer  # retried, and logged as a warning
        assert script.chat_requests[-1].headers["Authorization"] == f"Bearer {key}"
        wrong = OpenAIChatProvider("fake-chat", f"{url}/v1", api_key=key[::-1], retry=FAST)
        with pytest.raises(ProviderRequestError) as raised:
            wrong.chat(QUESTION)
        assert raised.value.status == 401
        assert "you sent Bearer ***" in str(raised.value)  # the server echoed it; the message masks it
    for text in (str(raised.value), repr(provider), repr(provider.http), repr(wrong), caplog.text):
        assert key not in text and key[::-1] not in text


def test_the_registry_builds_each_provider(tmp_path: Path) -> None:
    ollama = build_chat_provider("ollama", "fake-chat", base_url="http://127.0.0.1:9")
    assert isinstance(ollama, OllamaChatProvider) and ollama.model_ref == "fake-chat:latest"
    openai = build_chat_provider("openai", "fake-chat", base_url="http://127.0.0.1:9/v1", api_key="k")
    assert isinstance(openai, OpenAIChatProvider) and "api_key=set" in repr(openai)
    local = build_chat_provider("local", cache_dir=tmp_path)
    assert isinstance(local, LocalChatModel) and local.cache_dir == tmp_path and not local.is_loaded
    with pytest.raises(ValueError, match="not one of"):
        build_chat_provider("other")  # type: ignore[arg-type]
