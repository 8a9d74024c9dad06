"""Both HTTP providers against ``holocron serve-embeddings`` on 127.0.0.1, serving the real bundled model.

Covers the server's API surface field by field (Ollama's /api/embed, /api/tags, /api/show, /api/version; OpenAI's
/v1/embeddings and /v1/models, error bodies included), the providers' identities and vectors, the API key, the
CLI commands that talk to servers, and what happens when the served model's digest changes.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from holocron import __version__
from holocron.cli.app import app as cli
from holocron.config import Settings
from holocron.embedding.base import Purpose
from holocron.embedding.http import ModelChangedError, ModelNotFoundError, ProviderRequestError, RetryPolicy
from holocron.embedding.local import LocalProvider
from holocron.embedding.ollama import OllamaProvider
from holocron.embedding.openai import OpenAIProvider
from holocron.embedding.server import create_app
from holocron.service import Holocron
from holocron.store.spaces import get_or_create_space, list_spaces
from holocron.vectors import cosine
from servers import UvicornThread, embedding_server, local_provider

pytestmark = pytest.mark.model

TEXTS = [
    "Penny is a villager who lives in a trailer next to the river in Pelican Town.",
    "t-SNE places similar objects near each other and dissimilar objects far apart.",
    "Aguamenti is a charm that conjures a jet of clean, drinkable water.",
]


@pytest.fixture(scope="module")
def local() -> LocalProvider:
    return local_provider()


@pytest.fixture(scope="module")
def url() -> str:
    return embedding_server().url


@pytest.fixture(scope="module")
def model(local: LocalProvider) -> str:
    return local.model_name


@pytest.fixture()
def fresh_server(local: LocalProvider) -> Iterator[tuple[str, object]]:
    """A second server on the same loaded model whose state a test may change (the shared one stays as it is)."""
    app = create_app(local, load_on_start=False)
    server = UvicornThread(app)
    try:
        yield server.url, app
    finally:
        server.stop()


# --- the providers ------------------------------------------------------------------------------------------------


def test_ollama_identity_comes_from_the_server(url: str, model: str, local: LocalProvider) -> None:
    provider = OllamaProvider(model, url)
    identity = provider.identity()
    assert identity.provider == "ollama"
    assert (identity.model_name, identity.model_tag) == (model, "latest")
    assert identity.model_digest == local.identity().model_digest  # the weights' sha256, via /api/tags
    assert identity.dimensions == 384  # /api/show bert.embedding_length
    assert identity.max_input_tokens == 256  # /api/show bert.context_length
    assert identity.normalized
    assert identity.endpoint_url == url
    assert provider.server_version == __version__
    assert provider.capabilities == ["embedding"]


def test_openai_identity_is_probed(url: str, model: str, local: LocalProvider) -> None:
    identity = OpenAIProvider(model, f"{url}/v1").identity()
    assert identity.provider == "openai"
    assert identity.model_digest == local.identity().model_digest  # the digest extension of /v1/models
    assert identity.dimensions == 384
    assert identity.max_input_tokens == 256  # max_model_len, as vLLM reports it
    assert identity.normalized


@pytest.mark.parametrize("kind", ["ollama", "openai-float", "openai-base64"])
def test_vectors_match_the_local_model_row_by_row(kind: str, url: str, model: str, local: LocalProvider) -> None:
    provider: OllamaProvider | OpenAIProvider
    if kind == "ollama":
        provider = OllamaProvider(model, url, batch_size=2)
    else:
        provider = OpenAIProvider(model, f"{url}/v1", encoding_format=kind.split("-")[1], batch_size=2)  # type: ignore[arg-type]
    vectors = provider.embed(TEXTS)
    reference = local.embed(TEXTS)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for row, expected in zip(vectors, reference, strict=True):
        assert cosine(row, expected) >= 0.9999
    assert provider.stats.calls == 2  # batch_size=2: two requests for three texts
    assert provider.stats.texts == 3


def test_float_and_base64_carry_the_same_numbers(url: str, model: str) -> None:
    as_float = OpenAIProvider(model, f"{url}/v1", encoding_format="float").embed(TEXTS)
    as_base64 = OpenAIProvider(model, f"{url}/v1", encoding_format="base64").embed(TEXTS)
    assert np.array_equal(as_float, as_base64)


def test_model_not_found_through_the_providers(url: str) -> None:
    with pytest.raises(ModelNotFoundError, match=r"run `ollama pull nomic-embed-text:latest`"):
        OllamaProvider("nomic-embed-text", url).identity()
    with pytest.raises(ModelNotFoundError, match=r"not served"):
        OpenAIProvider("text-embedding-3-small", f"{url}/v1").identity()


def test_index_and_search_through_ollama_api(url: str, model: str, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    for i, text in enumerate(TEXTS):
        (pages / f"{i}.txt").write_text(text)
    provider = OllamaProvider(model, url)
    with Holocron(Settings(home=tmp_path / "home"), provider=provider) as holo:
        holo.ingest([pages])
        report = holo.index()
        assert report.embedding.embeddings_written == 3
        assert holo.space.provider == "ollama"
        result = holo.search("Which spell makes water?", k=1)
        assert "Aguamenti" in result.hits[0].text
        provider.stats.calls = 0
        assert holo.index().embedding.embeddings_written == 0
        assert provider.stats.calls == 0  # an unchanged rerun calls the model zero times


# --- the Ollama API, field by field --------------------------------------------------------------------------------


def test_api_tags(url: str, model: str, local: LocalProvider) -> None:
    response = httpx.get(f"{url}/api/tags")
    assert response.status_code == 200
    [entry] = response.json()["models"]
    assert entry["name"] == entry["model"] == f"{model}:latest"
    assert re.fullmatch(r"[0-9a-f]{64}", entry["digest"])  # hex sha256, no prefix, as Ollama
    assert f"sha256:{entry['digest']}" == local.identity().model_digest
    assert entry["size"] > 80_000_000
    assert entry["modified_at"]
    assert entry["details"] == {
        "parent_model": "",
        "format": "safetensors",
        "family": "bert",
        "families": ["bert"],
        "parameter_size": "22.7M",
        "quantization_level": "F32",
    }


def test_api_show_and_version(url: str, model: str) -> None:
    shown = httpx.post(f"{url}/api/show", json={"model": model}).json()
    assert shown["capabilities"] == ["embedding"]
    assert shown["details"]["family"] == "bert"
    info = shown["model_info"]
    assert info["general.architecture"] == "bert"
    assert info["bert.embedding_length"] == 384
    assert info["bert.context_length"] == 256
    assert info["general.parameter_count"] == 22_713_216
    assert httpx.post(f"{url}/api/show", json={"name": f"{model}:latest"}).status_code == 200  # legacy field
    assert httpx.get(f"{url}/api/version").json() == {"version": __version__}


@pytest.mark.parametrize("path", ["/api/show", "/api/embed"])
def test_api_unknown_model_is_ollamas_404(url: str, path: str) -> None:
    response = httpx.post(f"{url}{path}", json={"model": "nope", "input": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": 'model "nope" not found, try pulling it first'}
    response = httpx.post(f"{url}{path}", json={"model": "nope:v2", "input": "x"})
    assert response.json() == {"error": 'model "nope:v2" not found, try pulling it first'}


def test_api_embed_response_fields(url: str, model: str) -> None:
    body = httpx.post(f"{url}/api/embed", json={"model": model, "input": TEXTS[0]}).json()
    assert set(body) == {"model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"}
    assert body["model"] == model
    assert len(body["embeddings"]) == 1 and len(body["embeddings"][0]) == 384
    assert isinstance(body["total_duration"], int) and body["total_duration"] > 0
    assert isinstance(body["load_duration"], int)
    assert 10 < body["prompt_eval_count"] < 40
    many = httpx.post(f"{url}/api/embed", json={"model": f"{model}:latest", "input": TEXTS}).json()
    assert len(many["embeddings"]) == 3
    assert np.allclose(many["embeddings"][0], body["embeddings"][0], atol=1e-6)


def test_api_embed_options_truncate_and_dimensions(url: str, model: str) -> None:
    long = "word " * 2000
    body = {"model": model, "input": [long], "keep_alive": "5m", "options": {"num_ctx": 256}}
    truncated = httpx.post(f"{url}/api/embed", json=body).json()
    assert truncated["prompt_eval_count"] == 256
    refused = httpx.post(f"{url}/api/embed", json={**body, "truncate": False})
    assert refused.status_code == 400
    assert refused.json() == {"error": "input length exceeds the context length"}
    short = httpx.post(f"{url}/api/embed", json={"model": model, "input": "short", "dimensions": 128}).json()
    assert len(short["embeddings"][0]) == 128
    assert np.linalg.norm(short["embeddings"][0]) == pytest.approx(1.0, abs=1e-5)
    empty = httpx.post(f"{url}/api/embed", json={"model": model, "input": []})
    assert empty.status_code == 200
    assert empty.json() == {"model": model, "embeddings": []}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"input": "x"}, "model is required"),
        ({"model": "M", "input": 3}, "invalid input type"),
        ({"model": "M", "input": ["a", 1]}, "invalid input type"),
        ({"model": "M", "input": "a", "truncate": "yes"}, "truncate must be a boolean"),
    ],
)
def test_api_embed_bad_requests(url: str, model: str, body: dict[str, object], error: str) -> None:
    if body.get("model") == "M":
        body = {**body, "model": model}
    response = httpx.post(f"{url}/api/embed", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert httpx.post(f"{url}/api/embed", content=b"{not json").status_code == 400


def test_api_embeddings_legacy(url: str, model: str, local: LocalProvider) -> None:
    body = httpx.post(f"{url}/api/embeddings", json={"model": model, "prompt": TEXTS[0]}).json()
    assert cosine(body["embedding"], local.embed([TEXTS[0]])[0]) >= 0.9999


# --- the OpenAI API, field by field --------------------------------------------------------------------------------


def test_v1_embeddings_response_fields(url: str, model: str) -> None:
    body = httpx.post(f"{url}/v1/embeddings", json={"model": model, "input": TEXTS}).json()
    assert body["object"] == "list"
    assert body["model"] == model
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    assert all(len(item["embedding"]) == 384 for item in body["data"])
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    single = httpx.post(
        f"{url}/v1/embeddings", json={"model": model, "input": TEXTS[0], "encoding_format": "base64", "dimensions": 384}
    ).json()
    decoded = np.frombuffer(base64.b64decode(single["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, body["data"][0]["embedding"], atol=1e-7)


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": [[1, 2, 3]]}, 400, "input", "unsupported_input"),
        ({"input": [1, 2, 3]}, 400, "input", "unsupported_input"),
        ({"input": []}, 400, "input", None),
        ({"input": ["ok", ""]}, 400, "input", None),
        ({}, 400, "input", None),
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format", "invalid_value"),
        ({"input": "x", "dimensions": 128}, 400, "dimensions", None),
        ({"input": "x", "dimensions": 0}, 400, "dimensions", "invalid_value"),
        ({"input": "x", "model": None}, 400, "model", None),
        ({"input": "x", "model": "gpt-nope"}, 404, None, "model_not_found"),
    ],
)
def test_v1_errors_are_openai_error_objects(
    url: str, model: str, body: dict[str, object], status: int, param: str | None, code: str | None
) -> None:
    response = httpx.post(f"{url}/v1/embeddings", json={"model": model, **body})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]


def test_v1_models(url: str, model: str, local: LocalProvider) -> None:
    body = httpx.get(f"{url}/v1/models").json()
    assert body["object"] == "list"
    [entry] = body["data"]
    assert entry["id"] == model
    assert entry["object"] == "model"
    assert isinstance(entry["created"], int)
    assert entry["owned_by"] == "holocron"
    assert entry["digest"] == local.identity().model_digest
    assert httpx.get(f"{url}/v1/models/{model}").json()["id"] == model
    assert httpx.get(f"{url}/v1/models/gpt-nope").json()["error"]["code"] == "model_not_found"


# --- the API key ---------------------------------------------------------------------------------------------------


def test_api_key_required_when_configured(local: LocalProvider, caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-serve-TOPSECRET-42"
    caplog.set_level(logging.DEBUG)
    server = UvicornThread(create_app(local, api_key=key, load_on_start=False))
    try:
        good = OpenAIProvider(local.model_name, f"{server.url}/v1", api_key=key)
        assert good.embed(["hello"]).shape == (1, 384)
        anonymous = OpenAIProvider(local.model_name, f"{server.url}/v1", retry=RetryPolicy(max_retries=3))
        with pytest.raises(ProviderRequestError, match="no API key was sent") as raised:
            anonymous.identity()
        assert raised.value.status == 401
        assert anonymous.http.attempts == 1  # 401 is not retried
        error = httpx.post(f"{server.url}/v1/embeddings", json={}, headers={"Authorization": "Bearer wrong"}).json()
        assert error["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{server.url}/api/tags").status_code == 401
    finally:
        server.stop()
    assert key not in caplog.text
    assert key not in repr(good)


# --- the command line ---------------------------------------------------------------------------------------------


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_models_lists_what_each_server_serves(url: str, model: str, local: LocalProvider, tmp_path: Path) -> None:
    output = run_cli(
        "--home", str(tmp_path), "models", "--provider", "ollama", "--provider", "openai",
        "--ollama-url", url, "--openai-url", f"{url}/v1", "--json",
    )  # fmt: skip
    rows = json.loads(output)
    assert [(r["provider"], r["model"]) for r in rows] == [("ollama", f"{model}:latest"), ("openai", model)]
    assert {r["digest"] for r in rows} == {local.identity().model_digest}
    assert all(r["status"].startswith("ok") for r in rows)


def test_spaces_probe_reports_dimensions_norm_latency_and_digest(url: str, model: str, tmp_path: Path) -> None:
    output = run_cli(
        "--home", str(tmp_path), "spaces", "probe", "--embed-provider", "openai",
        "--openai-url", f"{url}/v1", "--embed-model", model, "--json",
    )  # fmt: skip
    report = json.loads(output)
    assert report["dimensions"] == 384
    assert report["norm"] == pytest.approx(1.0, abs=1e-4)
    assert report["document_latency_ms"] > 0
    assert report["digest"].startswith("sha256:")
    assert report["space"] is None


def test_a_new_digest_makes_a_new_space_and_the_cli_says_so(
    fresh_server: tuple[str, object], model: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, app = fresh_server
    served = app.state.served  # type: ignore[attr-defined]
    settings = Settings(home=tmp_path, embed_provider="ollama", ollama_base_url=url, embed_model=model)

    first = OllamaProvider(model, url, identity_check_s=0)
    worker = Holocron(settings, provider=first)  # a long-running worker, resolved before the pull
    original = worker.space
    assert first.embed(["before the pull"]).shape == (1, 384)

    served.digest = "cd" * 32  # someone pulled new weights under the same name
    with pytest.raises(ModelChangedError, match="changed"):
        first.embed(["after the pull"])  # the old provider refuses: no vectors of the new model in the old space
    worker.close()

    caplog.set_level(logging.WARNING, logger="holocron")
    with Holocron(settings, provider=OllamaProvider(model, url)) as holo:
        second = holo.space
    assert second.embedding_space_id != original.embedding_space_id
    assert second.model_name == original.model_name
    assert second.model_digest == f"sha256:{'cd' * 32}"
    assert "changed" in caplog.text and original.name in caplog.text

    served.digest = "ef" * 32
    args = ["--home", str(tmp_path), "spaces", "create", "--embed-provider", "ollama", "--ollama-url", url]
    output = run_cli(*args, "--embed-model", model)
    assert f"model {model} changed" in output
    assert "new embedding space" in output
    assert "created space" in output

    listed = json.loads(run_cli("--home", str(tmp_path), "spaces", "list", "--json"))
    assert [s["model_digest"][-4:] for s in listed] == [original.model_digest[-4:], "cdcd", "efef"]
    with Holocron(Settings(home=tmp_path)) as holo, holo.db.read() as tx:
        assert len(list_spaces(tx)) == 3
    again = run_cli(*args, "--embed-model", model)
    assert "exists" in again


def test_prefix_policy_is_recorded_in_the_space(url: str, model: str, tmp_path: Path) -> None:
    from holocron.embedding.base import PreprocessPolicy

    policy = PreprocessPolicy(document_prefix="passage: ", query_prefix="query: ")
    provider = OllamaProvider(model, url, preprocess=policy)
    with Holocron(Settings(home=tmp_path), provider=provider) as holo:
        space, _ = get_or_create_space(holo.db, provider.identity())
        document = provider.embed(["Wellington"], Purpose.DOCUMENT)[0]
        query = provider.embed(["Wellington"], Purpose.QUERY)[0]
    assert space.preprocess == policy
    assert cosine(document, query) < 0.9999  # the prefixes reached the model
