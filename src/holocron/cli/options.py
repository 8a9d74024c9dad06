"""Options that several commands share, each with its help text, metavar and environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer

from holocron.cli.common import one_of, spoken, whole_number
from holocron.vocabulary import JOB_STATUSES, JOB_TYPES, VISIBLE_STATUSES, ProviderName

PROVIDERS: tuple[str, ...] = get_args(ProviderName)
JOB_TYPE_LIST = spoken(JOB_TYPES)
JOB_STATUS_LIST = spoken(JOB_STATUSES)
SOURCE_STATUS_LIST = spoken(VISIBLE_STATUSES)
MAX_LIMIT = 10_000

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the HTTP API's field names) instead of a table.")]
LimitOption = Annotated[
    int,
    typer.Option(
        "--limit", parser=whole_number(1, MAX_LIMIT), metavar="N", help=f"Show at most N (1 to {MAX_LIMIT:,})."
    ),
]
OffsetOption = Annotated[
    int, typer.Option("--offset", parser=whole_number(0), metavar="N", help="Skip the first N (for paging).")
]

ProviderOption = Annotated[
    str | None,
    typer.Option(
        "--embed-provider",
        envvar="HOLOCRON_EMBED_PROVIDER",
        parser=one_of(PROVIDERS),
        metavar="PROVIDER",
        help=f"Embedding provider: {spoken(PROVIDERS)} (default: local).",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--embed-model",
        envvar="HOLOCRON_EMBED_MODEL",
        metavar="NAME",
        help="Embedding model (default: the provider's; for ollama also OLLAMA_EMBED_MODEL).",
    ),
]
OllamaUrlOption = Annotated[
    str | None,
    typer.Option(
        "--ollama-url",
        envvar=["HOLOCRON_OLLAMA_BASE_URL", "OLLAMA_BASE_URL"],
        metavar="URL",
        help="Ollama base URL (default: http://localhost:11434).",
    ),
]
OpenAIUrlOption = Annotated[
    str | None,
    typer.Option(
        "--openai-url",
        envvar="HOLOCRON_OPENAI_BASE_URL",
        metavar="URL",
        help="OpenAI-compatible base URL, with /v1 (default: http://localhost:8000/v1).",
    ),
]

JobTypesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        parser=one_of(JOB_TYPES, several=True),
        metavar="TYPE",
        help=f"Only these job types (repeat or comma-separate): {JOB_TYPE_LIST}.",
    ),
]
JobStatusesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        parser=one_of(JOB_STATUSES, several=True),
        metavar="STATUS",
        help=f"Only these statuses (repeat or comma-separate): {JOB_STATUS_LIST}.",
    ),
]


AllowRootOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--allow-root",
        metavar="FOLDER",
        help="Also read files under this folder (repeatable): symlink targets, a manifest's lake_uri paths.",
    ),
]
KeepLastGoodOption = Annotated[
    bool | None,
    typer.Option(
        "--keep-last-good/--no-keep-last-good",
        envvar="HOLOCRON_KEEP_LAST_GOOD",
        help="A source whose new version is broken keeps serving its last good chunks (shown as stale).",
        show_default=False,
    ),
]
