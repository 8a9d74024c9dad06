"""Settings: one typed object; CLI flags > environment > holocron.toml > defaults; the inventory's variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from holocron.config import Settings, load_settings
from holocron.embedding.base import PreprocessPolicy
from holocron.embedding.local import LocalProvider
from holocron.embedding.ollama import OllamaProvider
from holocron.embedding.openai import OpenAIProvider
from holocron.embedding.registry import build_provider
from holocron.vocabulary import DEFAULT_LOCAL_MODEL


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No stray variables or config file from the machine running the tests; returns the config file's path."""
    for name in list(os.environ):
        if name.upper().startswith(("HOLOCRON_", "OLLAMA_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "holocron.toml"
    monkeypatch.setenv("HOLOCRON_CONFIG", str(config))
    return config


def test_defaults() -> None:
    settings = Settings()
    assert settings.embed_provider == "local"
    assert settings.resolved_embed_model == DEFAULT_LOCAL_MODEL
    assert settings.ollama_base_url == "http://localhost:11434"
    assert settings.openai_base_url == "http://localhost:8000/v1"
    assert settings.ollama_truncate is True
    assert settings.openai_api_key is None and settings.resolved_openai_api_key() is None
    assert Settings(embed_provider="ollama").resolved_embed_model == "nomic-embed-text"
    assert Settings(embed_provider="openai").resolved_embed_model == "text-embedding-3-small"


def test_precedence_cli_over_env_over_file_over_defaults(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text(
        'embed_provider = "ollama"\n'
        'ollama_base_url = "http://from-file:11434"\n'
        "request_timeout_s = 11.0\n"
        "max_retries = 7\n"
        "circuit_failures = 9\n"
    )
    from_file = Settings()
    assert from_file.embed_provider == "ollama"
    assert from_file.ollama_base_url == "http://from-file:11434"
    assert (from_file.request_timeout_s, from_file.max_retries, from_file.circuit_failures) == (11.0, 7, 9)
    assert from_file.retry_backoff_s == 0.5  # not in the file: the default

    monkeypatch.setenv("HOLOCRON_REQUEST_TIMEOUT_S", "22")
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://from-env:11434")
    from_env = Settings()
    assert from_env.request_timeout_s == 22.0
    assert from_env.ollama_base_url == "http://from-env:11434"
    assert from_env.max_retries == 7  # still from the file

    from_cli = load_settings(request_timeout_s=33.0, ollama_base_url="http://from-cli:1", max_retries=None)
    assert from_cli.request_timeout_s == 33.0
    assert from_cli.ollama_base_url == "http://from-cli:1"
    assert from_cli.max_retries == 7  # a flag not given (None) changes nothing


def test_inventory_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://gpu-box:11434")
    monkeypatch.setenv("OLLAMA_EMBED_MODEL", "mxbai-embed-large")
    ollama = Settings(embed_provider="ollama")
    assert ollama.ollama_base_url == "http://gpu-box:11434"
    assert ollama.resolved_embed_model == "mxbai-embed-large"
    # The Ollama variable names the Ollama model only: the local default keeps its own name and prefixes.
    assert Settings().resolved_embed_model == DEFAULT_LOCAL_MODEL
    # Holocron's own variables win over the inventory's.
    monkeypatch.setenv("HOLOCRON_OLLAMA_BASE_URL", "http://other:11434")
    monkeypatch.setenv("HOLOCRON_EMBED_MODEL", "nomic-embed-text:v1.5")
    both = Settings(embed_provider="ollama")
    assert both.ollama_base_url == "http://other:11434"
    assert both.resolved_embed_model == "nomic-embed-text:v1.5"


def test_structured_values_from_env_and_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text("[ollama_options]\nnum_ctx = 2048\n\n[other]\nignored = true\n")
    assert Settings().ollama_options == {"num_ctx": 2048}
    monkeypatch.setenv("HOLOCRON_OLLAMA_OPTIONS", '{"num_ctx": 512, "num_thread": 4}')
    assert Settings().ollama_options == {"num_ctx": 512, "num_thread": 4}
    monkeypatch.setenv("HOLOCRON_OLLAMA_TRUNCATE", "false")
    assert Settings().ollama_truncate is False


def test_the_api_key_is_secret_and_can_come_from_a_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_TOKEN", "tok-from-named-variable")
    settings = Settings(openai_api_key_env="VLLM_TOKEN")
    key = settings.resolved_openai_api_key()
    assert isinstance(key, SecretStr) and key.get_secret_value() == "tok-from-named-variable"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-standard-variable")
    standard = Settings()
    assert standard.openai_api_key is not None
    assert standard.resolved_openai_api_key().get_secret_value() == "sk-standard-variable"  # type: ignore[union-attr]
    for text in (
        repr(standard),
        str(standard),
        standard.model_dump_json(),
        repr(build_provider(standard.with_overrides(embed_provider="openai"))),
    ):
        assert "sk-standard-variable" not in text


def test_build_provider_maps_settings_to_each_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    local = build_provider(Settings())
    assert isinstance(local, LocalProvider)
    assert local.model_name == DEFAULT_LOCAL_MODEL
    assert local.preprocess == PreprocessPolicy()
    assert (local.batch_size, local.batch_tokens) == (64, 4096)

    monkeypatch.setenv("OLLAMA_EMBED_MODEL", "nomic-embed-text")
    ollama = build_provider(
        Settings(
            embed_provider="ollama",
            ollama_base_url="http://ollama:11434",
            ollama_keep_alive="10m",
            ollama_options={"num_ctx": 1024},
            max_retries=6,
            retry_backoff_s=0.25,
            circuit_failures=3,
            embed_batch_tokens=4096,
        )
    )
    assert isinstance(ollama, OllamaProvider)
    assert ollama.model_ref == "nomic-embed-text:latest"
    assert ollama.http.base_url == "http://ollama:11434"
    assert (ollama.keep_alive, ollama.options, ollama.batch_tokens) == ("10m", {"num_ctx": 1024}, 4096)
    assert (ollama.http.retry.max_retries, ollama.http.retry.backoff_base_s) == (6, 0.25)
    assert ollama.http.circuit.failure_threshold == 3
    assert ollama.preprocess == PreprocessPolicy("search_document: ", "search_query: ")

    openai = build_provider(
        Settings(
            embed_provider="openai",
            embed_model="intfloat/e5-base-v2",
            openai_base_url="http://vllm:8000/v1",
            openai_dimensions=768,
            embed_query_prefix="q: ",
        )
    )
    assert isinstance(openai, OpenAIProvider)
    assert openai.http.base_url == "http://vllm:8000/v1"
    assert openai.dimensions == 768
    assert openai.preprocess == PreprocessPolicy("passage: ", "q: ")  # catalog, with the setting on top


def test_cli_flags_override_everything(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from holocron.cli.app import app

    clean_env.write_text('ollama_base_url = "http://from-file:1"\n')
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = CliRunner().invoke(
        app,
        [
            "--home",
            "h",
            "models",
            "--provider",
            "ollama",
            "--ollama-url",
            "http://127.0.0.1:1",
            "--timeout",
            "0.5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:1" in result.output
    assert "from-file" not in result.output and ":9" not in result.output
