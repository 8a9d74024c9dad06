"""Model providers on the command line: `models`, `serve-models` (alias `serve-embeddings`), `spaces create`,
`spaces probe`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holocron.cli.common import (
    UserError,
    console,
    err_console,
    one_of,
    positive_number,
    print_json,
    print_table,
    print_warning,
    spoken,
    state,
    whole_number,
)
from holocron.cli.options import PROVIDERS, JsonOption, ModelOption, OllamaUrlOption, OpenAIUrlOption, ProviderOption
from holocron.net import is_loopback
from holocron.vocabulary import DEFAULT_LOCAL_MODEL

if TYPE_CHECKING:
    from holocron.config import Settings
    from holocron.embedding.base import EmbeddingProvider, ModelIdentity


def register(app: typer.Typer, spaces_app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("serve-models")(serve_models)
    app.command("serve-embeddings", help="The same as serve-models (its former name).")(serve_models)
    spaces_app.command("create")(create_space)
    spaces_app.command("probe")(probe)


def _settings(
    ctx: typer.Context,
    provider: str | None = None,
    model: str | None = None,
    ollama_url: str | None = None,
    openai_url: str | None = None,
) -> Settings:
    if provider is not None and provider not in PROVIDERS:
        raise UserError(f"--embed-provider is one of {', '.join(PROVIDERS)}, not {provider!r}")
    return state(ctx).settings(
        embed_provider=provider, embed_model=model, ollama_base_url=ollama_url, openai_base_url=openai_url
    )


def _local_model_name(settings: Settings) -> str:
    """The local model's name: the configured one when the local provider is configured, else the default."""
    return settings.resolved_embed_model if settings.embed_provider == "local" else DEFAULT_LOCAL_MODEL


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


# -- holocron models -----------------------------------------------------------------------------


def models(
    ctx: typer.Context,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            parser=one_of(PROVIDERS),
            metavar="PROVIDER",
            help=f"Only these providers (repeatable): {spoken(PROVIDERS)} (default: all three).",
        ),
    ] = None,
    ollama_url: OllamaUrlOption = None,
    openai_url: OpenAIUrlOption = None,
    timeout: Annotated[
        float, typer.Option(parser=positive_number, metavar="SECONDS", help="How long to wait for each server.")
    ] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """What each embedding provider serves.

    The local model folder, the Ollama server and the OpenAI-compatible server; * marks the configured model.
    """
    settings = _settings(ctx, ollama_url=ollama_url, openai_url=openai_url)
    wanted = provider or list(PROVIDERS)
    unknown = [p for p in wanted if p not in PROVIDERS]
    if unknown:
        raise UserError(f"unknown provider {', '.join(unknown)}; known: {', '.join(PROVIDERS)}")
    rows: list[dict[str, Any]] = []
    for name in wanted:
        rows.extend(_served_by(name, settings, timeout))
    if as_json:
        print_json(rows)
        return
    print_table(
        "models",
        ["", "provider", "endpoint", "model", "digest", "details", "status"],
        [
            (
                "*" if row["configured"] else "",
                row["provider"],
                row["endpoint"],
                row["model"],
                _short(row["digest"] or ""),
                row["details"],
                row["status"] if len(row["status"]) <= 80 else row["status"][:77] + "...",
            )
            for row in rows
        ],
        wrap=("endpoint", "details", "status"),
    )
    console.print("[dim]* the configured provider and model[/dim]")


def _served_by(name: str, settings: Settings, timeout: float) -> list[dict[str, Any]]:
    from holocron.embedding.base import EmbeddingError

    configured_model = settings.resolved_embed_model if settings.embed_provider == name else None

    def row(endpoint: str, model: str, digest: str | None, details: str, status: str = "ok") -> dict[str, Any]:
        from holocron.embedding.catalog import parse_model_ref

        same = configured_model is not None and (
            model == configured_model or parse_model_ref(model) == parse_model_ref(configured_model)
        )
        return {
            "provider": name,
            "endpoint": endpoint,
            "model": model,
            "digest": digest,
            "details": details,
            "status": status,
            "configured": same,
        }

    if name == "local":
        from holocron.embedding.local import LocalProvider

        try:
            local = LocalProvider(_local_model_name(settings), settings.local_model_path)
            identity = local.identity()
        except EmbeddingError as exc:
            return [row("in process", "-", None, "", f"unavailable: {exc}")]
        details = f"{identity.dimensions}d, {identity.max_input_tokens} tokens, {local.model_path}"
        return [row("in process", identity.model_name, identity.model_digest, details)]

    from holocron.embedding.http import RetryPolicy

    no_retry = RetryPolicy(max_retries=0)
    if name == "ollama":
        from holocron.embedding.ollama import DEFAULT_OLLAMA_MODEL, OllamaProvider

        ollama = OllamaProvider(DEFAULT_OLLAMA_MODEL, settings.ollama_base_url, timeout_s=timeout, retry=no_retry)
        try:
            version = ollama.version()
            entries = ollama.list_models()
        except EmbeddingError as exc:
            return [row(ollama.http.shown_url, "-", None, "", f"unreachable: {exc}")]
        finally:
            ollama.close()
        status = f"ok (Ollama API {version})" if version else "ok"
        return [
            row(
                ollama.http.shown_url,
                str(entry.get("name") or entry.get("model")),
                f"sha256:{entry.get('digest', '')}",
                _ollama_details(entry),
                status,
            )
            for entry in entries
        ] or [row(ollama.http.shown_url, "-", None, "", "no models: `ollama pull nomic-embed-text`")]

    from holocron.embedding.openai import DEFAULT_OPENAI_MODEL, OpenAIProvider

    openai = OpenAIProvider(
        configured_model or DEFAULT_OPENAI_MODEL,
        settings.openai_base_url,
        api_key=settings.resolved_openai_api_key(),
        timeout_s=timeout,
        retry=no_retry,
    )
    try:
        listed = openai.list_models()
    except EmbeddingError as exc:
        return [row(openai.http.shown_url, "-", None, "", f"unreachable: {exc}")]
    finally:
        openai.close()
    if listed is None:
        return [row(openai.http.shown_url, "-", None, "", "the server does not list its models")]
    return [
        row(
            openai.http.shown_url,
            str(entry.get("id")),
            str(entry["digest"]) if entry.get("digest") else None,
            ", ".join(f"{k}={entry[k]}" for k in ("owned_by", "max_model_len") if entry.get(k) is not None),
        )
        for entry in listed
    ]


def _ollama_details(entry: dict[str, Any]) -> str:
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    assert isinstance(details, dict)
    parts = [str(details.get(k)) for k in ("family", "parameter_size", "quantization_level") if details.get(k)]
    size = entry.get("size")
    if isinstance(size, int) and size > 0:
        parts.append(f"{size / 1e6:.0f} MB")
    return ", ".join(parts)


# -- holocron serve-models (alias serve-embeddings) ----------------------------------------------


def serve_models(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(parser=whole_number(1, 65535), metavar="PORT", help="Port to listen on.")
    ] = 11435,
    model_path: Annotated[
        Path | None,
        typer.Option(
            envvar="HOLOCRON_LOCAL_MODEL_PATH",
            metavar="DIR",
            help="A sentence-transformers folder (default: the bundled model).",
        ),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Name the model is served under (default: its own).")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            metavar="VARIABLE",
            help="Require the header 'Authorization: Bearer KEY', KEY being the value of this environment variable.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(parser=whole_number(1), metavar="N", help="Inputs per forward pass.")] = 64,
    chat: Annotated[bool, typer.Option(help="Serve the local chat model too (--no-chat: embeddings only).")] = True,
    chat_model: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="The chat model's GGUF file (default: the bundled SmolLM2-135M-Instruct)."),
    ] = None,
    chat_name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Name the chat model is served under (default: its own).")
    ] = None,
    model_cache: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Where the chat model's converted weights are cached (default: HOME/models)."),
    ] = None,
    chat_threads: Annotated[
        int | None,
        typer.Option(parser=whole_number(1), metavar="N", help="torch threads while generating (default: torch's)."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the local models to workers over HTTP.

    The embedding model (Ollama's /api/embed, OpenAI's /v1/embeddings) and the chat model (Ollama's /api/chat and
    /api/generate, OpenAI's /v1/chat/completions), for workers that do not have them themselves.
    """
    import uvicorn

    from holocron.chat.base import ChatError
    from holocron.chat.local import LocalChatModel
    from holocron.embedding.local import LocalProvider
    from holocron.embedding.server import create_app

    settings = state(ctx).settings()
    path = model_path or settings.local_model_path
    if path is not None and not path.is_dir():
        raise UserError(f"--model-path {path}: no such folder")
    if chat_model is not None and not chat_model.is_file():
        raise UserError(f"--chat-model {chat_model}: no such file")
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise UserError(f"--api-key-env {api_key_env}: the variable is not set")
    if not is_loopback(host) and not api_key:
        print_warning(f"listening on {host} without an API key: anyone who can reach it can use it")
    provider = LocalProvider(
        model_name or _local_model_name(settings), path, batch_size=batch_size, device=settings.device
    )
    chat_provider = None
    if chat:
        try:
            chat_provider = LocalChatModel(
                chat_model, model_cache or settings.home / "models", threads=chat_threads, device=settings.device
            )
        except ChatError as exc:
            raise UserError(str(exc)) from exc
    try:
        app = create_app(
            provider,
            model_name=model_name,
            api_key=api_key,
            batch_size=batch_size,
            chat=chat_provider,
            chat_name=chat_name,
        )
    except (ValueError, ChatError) as exc:
        raise UserError(str(exc)) from exc
    served = app.state.served
    chat_served = app.state.chat_served
    chat_line = (
        f" and {chat_served.ref} ({chat_served.quantization_level}, digest {chat_served.digest[:12]})"
        if chat_served is not None
        else ""
    )
    err_console.print(
        f"serving {served.ref} ({served.dimensions}d, digest {served.digest[:12]}){chat_line} on "
        f"http://{host}:{port}: Ollama API at /api, OpenAI API at /v1"
    )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log, timeout_keep_alive=75)


# -- holocron spaces create / probe --------------------------------------------------------------


def _identity_or_fail(provider: EmbeddingProvider) -> ModelIdentity:
    from holocron.embedding.base import EmbeddingError

    try:
        return provider.identity()
    except EmbeddingError as exc:
        raise UserError(str(exc)) from exc


def create_space(
    ctx: typer.Context,
    embed_provider: ProviderOption = None,
    embed_model: ModelOption = None,
    ollama_url: OllamaUrlOption = None,
    openai_url: OpenAIUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the space of the configured model as it is now.

    A new digest of the same model makes a new space: vectors of two digests are never mixed.
    """
    from holocron.service import Holocron
    from holocron.store.spaces import other_spaces_of_model

    settings = _settings(ctx, embed_provider, embed_model, ollama_url, openai_url)
    with Holocron(settings) as holo:
        identity = _identity_or_fail(holo.provider)
        space, created = holo.space_of(identity, create=True)
        assert space is not None
        with holo.db.read() as tx:
            others = other_spaces_of_model(tx, identity)
    changed = _change_message(identity, others) if created and others else None
    if as_json:
        print_json(
            {
                "space": space.name,
                "embedding_space_id": space.embedding_space_id,
                "created": created,
                "model_changed": changed,
                "other_spaces_of_model": [o.name for o in others],
                "preprocess": space.preprocess.to_json(),
            }
        )
        return
    if changed:
        err_console.print(f"[yellow]{changed}[/yellow]")
    verb = "created" if created else "exists:"
    console.print(f"{verb} space [bold]{space.name}[/bold] (id {space.embedding_space_id})")


def _change_message(identity: ModelIdentity, others: list[Any]) -> str:
    previous = ", ".join(f"{o.name}" for o in others)
    return (
        f"model {identity.model_name} changed (now {identity.model_tag}@{_short(identity.model_digest)}): "
        f"new embedding space; vectors of {previous} are kept apart and never mixed"
    )


def probe(
    ctx: typer.Context,
    text: Annotated[
        str, typer.Option(metavar="TEXT", help="The test text.")
    ] = "Holocron probe: what is the capital of New Zealand?",
    embed_provider: ProviderOption = None,
    embed_model: ModelOption = None,
    ollama_url: OllamaUrlOption = None,
    openai_url: OpenAIUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Embed a test text with the configured provider.

    Reports the dimensions, norm, latency, digest and the model's space (if it exists yet).
    """
    import numpy as np

    from holocron.embedding.base import EmbeddingError, Purpose
    from holocron.embedding.registry import build_provider
    from holocron.embedding.validation import validate_vectors

    settings = _settings(ctx, embed_provider, embed_model, ollama_url, openai_url)
    provider = build_provider(settings)
    try:
        started = time.perf_counter()
        identity = _identity_or_fail(provider)
        identity_ms = (time.perf_counter() - started) * 1000
        latencies: dict[str, float] = {}
        vectors = {}
        # The first call may load the model (or make the server load it): timed apart from the steady latency.
        for label, purpose in (
            ("first_call", Purpose.DOCUMENT),
            ("document", Purpose.DOCUMENT),
            ("query", Purpose.QUERY),
        ):
            started = time.perf_counter()
            try:
                raw = provider.embed([text], purpose)
                vectors[label] = validate_vectors(raw, expected=1, dimensions=identity.dimensions, ids=["probe"])[0]
            except EmbeddingError as exc:
                raise UserError(f"probe failed: {exc}") from exc
            latencies[label] = (time.perf_counter() - started) * 1000
    finally:
        provider.close()
    space = _existing_space(ctx, identity)
    document = vectors["document"]
    report = {
        "provider": identity.provider,
        "endpoint": identity.endpoint_url or "in process",
        "model": identity.model_name,
        "tag": identity.model_tag,
        "digest": identity.model_digest,
        "server_version": getattr(provider, "server_version", None),
        "dimensions": int(document.shape[0]),
        "norm": round(float(np.linalg.norm(document.astype(np.float64))), 6),
        "normalized": identity.normalized,
        "max_input_tokens": identity.max_input_tokens,
        "document_prefix": identity.preprocess.document_prefix,
        "query_prefix": identity.preprocess.query_prefix,
        "identity_ms": round(identity_ms, 1),
        "first_call_ms": round(latencies["first_call"], 1),
        "document_latency_ms": round(latencies["document"], 1),
        "query_latency_ms": round(latencies["query"], 1),
        "space": space or None,
    }
    if as_json:
        print_json(report)
        return
    shown = {**report, "space": space or "none yet: `holocron spaces create` (or `holocron index`) makes it"}
    print_table(f"probe of {identity.model_name}", ["field", "value"], shown.items(), wrap=("value",))


def _existing_space(ctx: typer.Context, identity: ModelIdentity) -> str | None:
    from holocron.service import Holocron

    with Holocron(state(ctx).settings()) as holo:
        found, _ = holo.space_of(identity)
    return found.name if found else None
