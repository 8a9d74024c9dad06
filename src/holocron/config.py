"""One typed settings object for the whole system.

Precedence, highest first: CLI flags (applied with :meth:`Settings.with_overrides`), environment variables,
the TOML config file (``HOLOCRON_CONFIG``, default ``./holocron.toml``), then the defaults below.
The inventory's variables ``OLLAMA_BASE_URL`` and ``OLLAMA_EMBED_MODEL`` are honoured as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from holocron.vocabulary import DEFAULT_LOCAL_MODEL, Device, ProviderName

DEFAULT_LEASE_SECONDS = 20.0
"""Short, so that a killed worker's job comes back within seconds; heartbeats renew it every third of it."""


def _config_file() -> Path:
    return Path(os.environ.get("HOLOCRON_CONFIG", "holocron.toml"))


class Settings(BaseSettings):
    """Everything configurable, in one place; read once per process."""

    model_config = SettingsConfigDict(env_prefix="HOLOCRON_", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path(".holocron"), description="Folder for the SQLite file, indexes and lake.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default a SQLite file in home.")
    lake_dir: Path | None = Field(default=None, description="Run artifacts; default home/lake.")

    # Embedding provider
    embed_provider: ProviderName = "local"
    embed_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HOLOCRON_EMBED_MODEL"),
        description="Model name for any provider; default depends on the provider.",
    )
    # The inventory's variable names the Ollama model only: a global OLLAMA_EMBED_MODEL must not rename the
    # local model (and give it nomic's task prefixes).
    ollama_embed_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HOLOCRON_OLLAMA_EMBED_MODEL", "OLLAMA_EMBED_MODEL"),
        description="Ollama model when embed_provider is ollama and embed_model is not set.",
    )
    local_model_path: Path | None = Field(default=None, description="A sentence-transformers folder.")
    device: Device = Field(
        default="auto",
        description="Where the in-process embedding and chat models run: auto takes a GPU when torch sees one.",
    )
    local_query_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="How the local model embeds queries: auto (ONNX Runtime once an index run has exported the "
        "model and onnxruntime is installed, torch until then), onnx (export on first need), torch.",
    )
    ollama_base_url: str = Field(
        default="http://localhost:11434",
        validation_alias=AliasChoices("HOLOCRON_OLLAMA_BASE_URL", "OLLAMA_BASE_URL"),
    )
    ollama_keep_alive: str | None = None
    ollama_truncate: bool = Field(default=True, description="Let Ollama truncate inputs longer than the window.")
    ollama_options: dict[str, Any] | None = Field(default=None, description="Passed as /api/embed 'options'.")
    openai_base_url: str = "http://localhost:8000/v1"
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HOLOCRON_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_api_key_env: str = Field(
        default="OPENAI_API_KEY", description="Variable holding the bearer token when openai_api_key is not set."
    )
    openai_dimensions: int | None = None
    openai_encoding_format: Literal["float", "base64"] = "base64"
    embed_document_prefix: str | None = Field(default=None, description="Overrides the model catalog's prefix.")
    embed_query_prefix: str | None = Field(default=None, description="Overrides the model catalog's prefix.")
    request_timeout_s: float = 60.0
    max_retries: int = 4
    retry_backoff_s: float = Field(default=0.5, description="First retry's delay; doubles per retry.")
    retry_backoff_max_s: float = 20.0
    retry_after_max_s: float = Field(default=120.0, description="Longest Retry-After honoured; longer fails.")
    circuit_failures: int = Field(default=5, description="Consecutive failures that open the circuit.")
    circuit_reset_s: float = Field(default=30.0, description="How long an open circuit fails fast.")
    identity_check_s: float = Field(default=60.0, description="How often a served model's digest is re-read.")
    embed_batch_size: int = 64
    embed_batch_tokens: int = 16384
    local_batch_tokens: int = Field(
        default=4096,
        ge=256,
        description="Padded tokens per forward pass of the in-process model: what bounds its activation memory.",
    )

    # Chunking (None: the policy fitted to the model's window)
    chunk_policy: Literal["window", "structure"] = Field(
        default="window",
        description="Character windows, or sections/paragraphs/sentences in the model's tokens with heading headers.",
    )
    chunk_context: Literal["path", "none"] = Field(
        default="path", description="structure: embed each chunk after its heading path (title › section), or alone."
    )
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    max_chunks_per_source: int = 1000
    max_source_bytes: int = 20 * 1024 * 1024
    # A source whose new version cannot be read or extracted keeps serving its last good chunks (as "stale")
    # instead of serving nothing.
    keep_last_good: bool = False

    # Retrieval (see docs/retrieval.md for how the defaults were measured)
    search_mode: Literal["vector", "keyword", "hybrid"] = "hybrid"
    search_via_server: bool = Field(
        default=True,
        description="holocron search asks a running holocron serve of the same store and model, if one is up.",
    )
    ann_exact_threshold: int = Field(default=20_000, description="Below this many vectors, exact search.")
    ann_connectivity: int = 16
    ann_expansion_add: int = 128
    ann_expansion_search: int = 512
    ann_save_every: int = Field(default=1_000, description="Index changes replayed before the file is saved.")
    ann_filter_exact_max: int = Field(
        default=5_000, description="A filter allowing at most this many vectors is searched exactly."
    )
    ann_filter_exact_fraction: float = Field(
        default=0.0, description="... or at most this share of the space; else HNSW's filtered search."
    )
    # PostgreSQL: one HNSW index per space (see docs/deployment.md for how the defaults were measured)
    hnsw_m: int = Field(default=16, description="pgvector HNSW graph connectivity (index build).")
    hnsw_ef_construction: int = Field(default=64, description="pgvector HNSW build candidate list.")
    hnsw_ef_search: int = Field(default=300, description="pgvector hnsw.ef_search per query.")
    search_fusion: Literal["rrf", "convex"] = Field(
        default="convex", description="Hybrid fusion: a convex mix of min-max scaled scores, or reciprocal ranks."
    )
    rrf_k: int = 60
    rrf_vector_weight: float = 1.0
    rrf_keyword_weight: float = 1.0
    rrf_candidates: int = 100
    keyword_common_cutoff: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="PostgreSQL keyword search: terms in more than this share of the chunks rank but do not match "
        "(1.0: every term matches).",
    )

    # Evidence bundles handed to the LLM
    evidence_max_items: int = 8
    evidence_max_total_bytes: int = 12_000
    evidence_max_item_bytes: int = 2_000

    # Chat model (the LLM interrogation runtime; see docs/llm.md)
    chat_provider: Literal["local", "ollama", "openai"] = "local"
    chat_model: str | None = Field(
        default=None, description="Chat model for any provider; default depends on the provider."
    )
    ollama_chat_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HOLOCRON_OLLAMA_CHAT_MODEL", "OLLAMA_CHAT_MODEL"),
        description="Ollama chat model when chat_provider is ollama and chat_model is not set.",
    )
    chat_model_path: Path | None = Field(default=None, description="A GGUF file; default the bundled SmolLM2.")
    model_cache_dir: Path | None = Field(
        default=None, description="Derived weights (de-quantised chat model, ONNX exports); default home/models."
    )
    chat_base_url: str | None = Field(
        default=None, description="The chat server; default ollama_base_url or openai_base_url by provider."
    )
    chat_num_predict: int = Field(default=256, ge=1, description="Most tokens an answer may have.")
    chat_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    chat_seed: int = 0
    chat_timeout_s: float = Field(default=120.0, gt=0)
    chat_threads: int | None = Field(default=None, ge=1, description="Torch threads of the local chat model.")
    chat_constrained: bool = Field(
        default=True, description="Decode the local model under the answer's JSON schema (valid by construction)."
    )
    llm_attempts: int = Field(default=3, ge=1, le=10, description="Model calls per run before it dead-letters.")
    llm_retry_backoff_s: float = Field(default=0.5, ge=0.0, description="First re-ask's delay; doubles.")
    interrogations_file: Path | None = Field(
        default=None, description="A TOML file of user interrogations, added to the built-in ones."
    )

    # Jobs
    worker_poll_seconds: float = 1.0
    lease_seconds: float = Field(
        default=DEFAULT_LEASE_SECONDS,
        gt=0,
        description="A job's lease; heartbeats renew it every third of it, a dead worker's job runs again after it.",
    )

    # Server
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    api_token: SecretStr | None = None

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    def resolved_openai_api_key(self) -> SecretStr | None:
        """The bearer token: the secret setting, else the variable named by ``openai_api_key_env``."""
        if self.openai_api_key is not None and self.openai_api_key.get_secret_value():
            return self.openai_api_key
        value = os.environ.get(self.openai_api_key_env, "") if self.openai_api_key_env else ""
        return SecretStr(value) if value else None

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply CLI flags on top; ``None`` means 'flag not given'."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return self.model_copy(update=given) if given else self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'holocron.db'}"

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.home / "models"

    @property
    def resolved_lake_dir(self) -> Path:
        return self.lake_dir or self.home / "lake"

    @property
    def resolved_embed_model(self) -> str:
        if self.embed_model:
            return self.embed_model
        if self.embed_provider == "ollama" and self.ollama_embed_model:
            return self.ollama_embed_model
        return {
            "local": DEFAULT_LOCAL_MODEL,
            "ollama": "nomic-embed-text",
            "openai": "text-embedding-3-small",
        }[self.embed_provider]

    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest request body the API reads.")
    api_allowed_hosts: list[str] = Field(default_factory=list, description="More Host names the API answers to.")


def load_settings(**overrides: Any) -> Settings:
    return Settings().with_overrides(**overrides)
