"""``holocron serve-models`` field by field, over raw HTTP on 127.0.0.1, with both real models loaded.

Listings name both models with their digests and capabilities; /api/chat, /api/generate and /v1/chat/completions
honour ``num_predict`` / ``max_tokens``, ``temperature`` (with ``seed``), ``format`` / ``response_format`` and
``stream`` (NDJSON, SSE); asking a model for the other's work, an unknown model and malformed requests get the
APIs' own errors. The ``serve-embeddings`` name still works.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from chat_servers import chat_model, model_server
from holocron.chat.base import ChatOptions
from holocron.chat.local import LocalChatModel
from holocron.cli.app import app as cli
from servers import local_provider

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class Colour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: Literal["red", "green", "blue"]


@pytest.fixture(scope="module")
def http() -> httpx.Client:
    return httpx.Client(base_url=model_server().url, timeout=120)


@pytest.fixture(scope="module")
def chat() -> LocalChatModel:
    return chat_model()


@pytest.fixture(scope="module")
def names(chat: LocalChatModel) -> tuple[str, str]:
    """(chat model, embedding model) as the server names them."""
    return chat.model_name, local_provider().model_name


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def sse(response: httpx.Response) -> list[Any]:
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


# --- listings ---------------------------------------------------------------------------------------------------


def test_tags_and_models_list_both(http: httpx.Client, chat: LocalChatModel, names: tuple[str, str]) -> None:
    chat_name, embed_name = names
    digest = hashlib.sha256(chat.gguf_path.read_bytes()).hexdigest()
    tags = {entry["name"]: entry for entry in http.get("/api/tags").json()["models"]}
    assert set(tags) == {f"{chat_name}:latest", f"{embed_name}:latest"}
    assert tags[f"{chat_name}:latest"]["digest"] == digest
    assert tags[f"{chat_name}:latest"]["details"]["format"] == "gguf"
    assert tags[f"{chat_name}:latest"]["details"]["parameter_size"] == "135M"
    running = {entry["name"] for entry in http.get("/api/ps").json()["models"]}
    assert running == set(tags)
    models = {entry["id"]: entry for entry in http.get("/v1/models").json()["data"]}
    assert set(models) == {chat_name, embed_name}
    assert models[chat_name]["digest"] == f"sha256:{digest}" and models[chat_name]["max_model_len"] == 8192
    assert http.get(f"/v1/models/{chat_name}").json()["id"] == chat_name


def test_show_reports_each_models_capabilities(http: httpx.Client, names: tuple[str, str]) -> None:
    chat_name, embed_name = names
    shown = http.post("/api/show", json={"model": chat_name}).json()
    assert shown["capabilities"] == ["completion"]
    assert shown["model_info"]["general.architecture"] == "llama"
    assert shown["model_info"]["llama.context_length"] == 8192
    assert "<|im_start|>" in shown["template"]
    assert http.post("/api/show", json={"model": embed_name}).json()["capabilities"] == ["embedding"]


# --- Ollama -----------------------------------------------------------------------------------------------------


def test_api_chat_whole_with_num_predict(http: httpx.Client, chat: LocalChatModel, names: tuple[str, str]) -> None:
    options = {"num_predict": 3, "temperature": 0}
    body = http.post("/api/chat", json={"model": names[0], "messages": QUESTION, "stream": False, "options": options})
    assert body.status_code == 200, body.text
    answer = body.json()
    assert answer["done"] is True and answer["done_reason"] == "length" and answer["eval_count"] == 3
    assert answer["message"]["role"] == "assistant"
    assert answer["message"]["content"] == chat.chat(QUESTION, options=ChatOptions(num_predict=3)).text
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"):
        assert isinstance(answer[key], int), key


def test_api_chat_streams_by_default(http: httpx.Client, names: tuple[str, str]) -> None:
    response = http.post("/api/chat", json={"model": names[0], "messages": QUESTION, "options": {"temperature": 0}})
    lines = ndjson(response)
    assert len(lines) > 2 and all(not line["done"] for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop" and final["message"]["content"] == ""
    assert final["eval_count"] == len(lines) - 1 or final["eval_count"] >= len(lines) - 1
    assert "Paris" in "".join(line["message"]["content"] for line in lines)


def test_temperature_and_seed_are_honoured(http: httpx.Client, chat: LocalChatModel, names: tuple[str, str]) -> None:
    options = {"num_predict": 10, "temperature": 1.3, "seed": 11, "top_k": 50, "top_p": 0.95, "num_ctx": 8192}
    ask = {"model": names[0], "messages": QUESTION, "stream": False, "options": options}
    first = http.post("/api/chat", json=ask).json()["message"]["content"]
    assert first == http.post("/api/chat", json=ask).json()["message"]["content"]
    local = chat.chat(QUESTION, options=ChatOptions(num_predict=10, temperature=1.3, seed=11, top_k=50, top_p=0.95))
    assert first == local.text  # the server sampled exactly as asked


def test_api_generate_with_a_schema(http: httpx.Client, names: tuple[str, str]) -> None:
    ask = {
        "model": names[0],
        "prompt": "The sky is which colour? Answer in JSON.",
        "format": Colour.model_json_schema(),
        "stream": False,
        "options": {"num_predict": 20, "temperature": 0},
    }
    answer = http.post("/api/generate", json=ask).json()
    assert Colour.model_validate_json(answer["response"])
    lines = ndjson(http.post("/api/generate", json={**ask, "stream": True}))
    assert "".join(line["response"] for line in lines) == answer["response"]
    as_json = http.post("/api/generate", json={**ask, "format": "json"}).json()
    assert as_json["response"].startswith("{")  # a JSON object (free-form: it may run out of tokens first)
    if as_json["done_reason"] == "stop":
        assert isinstance(json.loads(as_json["response"]), dict)


def test_an_empty_request_loads_the_model(http: httpx.Client, names: tuple[str, str]) -> None:
    loaded = http.post("/api/generate", json={"model": names[0]}).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load" and loaded["response"] == ""
    loaded = http.post("/api/chat", json={"model": names[0], "messages": []}).json()
    assert loaded["done_reason"] == "load" and loaded["message"]["content"] == ""


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/chat", {"model": "nope", "messages": QUESTION}, 404, 'model "nope" not found'),
        ("/api/chat", {"model": "EMBED", "messages": QUESTION}, 400, "does not support chat"),
        ("/api/generate", {"model": "EMBED", "prompt": "hi"}, 400, "does not support generate"),
        ("/api/embed", {"model": "CHAT", "input": "hi"}, 400, "does not support embeddings"),
        ("/api/chat", {"model": "CHAT", "messages": QUESTION, "format": 5}, 400, "invalid format"),
        ("/api/chat", {"model": "CHAT", "messages": QUESTION, "format": {"type": "bogus"}}, 400, "cannot be used"),
        ("/api/chat", {"model": "CHAT", "messages": QUESTION, "options": {"num_predict": "x"}}, 400, "integer"),
        ("/api/chat", {"model": "CHAT", "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid role"),
        ("/api/chat", {"model": "CHAT"}, 200, '"done_reason":"load"'),
    ],
)
def test_ollama_errors(
    http: httpx.Client, names: tuple[str, str], path: str, body: dict[str, Any], status: int, words: str
) -> None:
    model = {"CHAT": names[0], "EMBED": names[1]}.get(body["model"], body["model"])
    response = http.post(path, json={**body, "model": model, "stream": False})
    assert response.status_code == status, response.text
    if status >= 400:
        assert set(response.json()) == {"error"}
        assert words in response.json()["error"]
    else:
        assert words in response.text


# --- OpenAI -----------------------------------------------------------------------------------------------------


def test_chat_completions_whole(http: httpx.Client, chat: LocalChatModel, names: tuple[str, str]) -> None:
    ask = {"model": names[0], "messages": QUESTION, "max_tokens": 4, "temperature": 0}
    answer = http.post("/v1/chat/completions", json=ask).json()
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == chat.chat(QUESTION, options=ChatOptions(num_predict=4)).text
    usage = answer["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4


def test_chat_completions_stream_with_usage_and_a_schema(http: httpx.Client, names: tuple[str, str]) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "colour", "schema": Colour.model_json_schema()}}
    ask = {
        "model": names[0],
        "messages": [{"role": "user", "content": "Grass is which colour? Answer in JSON."}],
        "max_tokens": 20,
        "temperature": 0,
        "response_format": response_format,
    }
    whole = http.post("/v1/chat/completions", json=ask).json()["choices"][0]["message"]["content"]
    assert Colour.model_validate_json(whole)
    events = sse(
        http.post("/v1/chat/completions", json={**ask, "stream": True, "stream_options": {"include_usage": True}})
    )
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(event["object"] == "chat.completion.chunk" for event in events)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == whole
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    plain = sse(http.post("/v1/chat/completions", json={**ask, "stream": True}))
    assert all("usage" not in event for event in plain)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "nope", "messages": QUESTION}, 404, "does not exist"),
        ({"model": "EMBED", "messages": QUESTION}, 400, "does not support chat"),
        ({"model": "CHAT", "messages": []}, 400, "non-empty"),
        ({"model": "CHAT", "messages": QUESTION, "n": 2}, 400, "n=1"),
        ({"model": "CHAT", "messages": QUESTION, "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "CHAT", "messages": QUESTION, "response_format": {"type": "xml"}}, 400, "response_format"),
    ],
)
def test_openai_errors(
    http: httpx.Client, names: tuple[str, str], body: dict[str, Any], status: int, words: str
) -> None:
    model = {"CHAT": names[0], "EMBED": names[1]}.get(body["model"], body["model"])
    response = http.post("/v1/chat/completions", json={**body, "model": model})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"] and set(error) == {"message", "type", "param", "code"}
    embedding = http.post("/v1/embeddings", json={"model": names[0], "input": "hi"})
    assert embedding.status_code == 400 and "does not support embeddings" in embedding.json()["error"]["message"]


# --- the command ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve-models", "serve-embeddings"])
def test_the_command_and_its_old_name(command: str, tmp_path: Any) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["--home", str(tmp_path), command, "--help"])
    assert shown.exit_code == 0 and "--chat-model" in shown.output
    missing = runner.invoke(cli, ["--home", str(tmp_path), command, "--chat-model", str(tmp_path / "none.gguf")])
    assert missing.exit_code == 1 and "no such file" in missing.stderr
