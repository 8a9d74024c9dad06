"""The main path: ``ingest``, ``extract``, ``index``, ``search``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from holocron.cli.common import (
    UserError,
    console,
    err_console,
    one_of,
    open_holocron,
    print_error,
    print_json,
    print_warning,
    whole_number,
)
from holocron.cli.options import (
    AllowRootOption,
    JsonOption,
    KeepLastGoodOption,
    ModelOption,
    OllamaUrlOption,
    ProviderOption,
)
from holocron.cli.progress import track

INDEX_MODES = ("incremental", "full")
INDEX_ACTIONS = ("rebuild",)
EXIT_FAILED = 1
EXIT_PARTIAL = 2
"""``holocron index`` exits 0 when the run succeeded, 1 when it failed (nothing attempted got done) and 2 when
it was partial (some sources or embedding batches failed); ``status`` in ``--json`` says the same."""


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(extract)
    app.command()(index)


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of raw pages.", metavar="PATH")],
    source_system: Annotated[
        str, typer.Option(metavar="NAME", help="Where the pages came from; part of every source id.")
    ] = "files",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="TAG", help="Tag every source (repeatable).")
    ] = None,
    enqueue: Annotated[
        bool,
        typer.Option(
            "--enqueue/--no-enqueue",
            help="Queue CHUNK_SOURCE jobs for new and changed sources, for `holocron worker` to index.",
        ),
    ] = True,
    allow_root: AllowRootOption = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Delete the sources under the given folders whose files are gone (and all they stored)."
        ),
    ] = False,
    keep_last_good: KeepLastGoodOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register raw pages; unchanged files are a no-op.

    HTML, MediaWiki or OpenAlex JSON, plain text and Markdown, from files or folders (walked recursively).
    Nothing outside the given paths (and --allow-root folders) is read: symlinks leading elsewhere are
    skipped and reported. Exits 1 when any file was rejected.
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    with open_holocron(ctx) as holo, track("ingest", None, err_console, unit="files") as tracker:
        report = holo.ingest(
            paths,
            source_system=source_system,
            tags=tag or (),
            progress=tracker.advance,
            enqueue=enqueue,
            allow_roots=allow_root or (),
            prune=prune,
            keep_last_good=keep_last_good,
        )
    pruned = report.pruned.deleted if report.pruned else []
    summary = {
        "new": len(report.registered.new),
        "changed": len(report.registered.changed),
        "unchanged": len(report.registered.unchanged),
        "retagged": len(report.registered.retagged),
        "rejected": [{"source_id": r.source_id, "reason": r.reason} for r in report.rejected],
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
        "missing": report.missing,
        "pruned": pruned,
        "jobs_enqueued": len(report.enqueued),
    }
    if as_json:
        print_json(summary)
    else:
        for item in report.rejected:
            print_error(f"{item.source_id}: {item.reason}")
        for skipped in report.skipped:
            print_warning(f"{skipped.path}: skipped, {skipped.reason}")
        if report.missing:
            print_warning(
                f"{len(report.missing)} registered sources have no file any more (still searchable; "
                f"`holocron ingest --prune` deletes them): {', '.join(report.missing[:5])}"
                + (" ..." if len(report.missing) > 5 else "")
            )
        console.print(
            f"ingested: [bold]{summary['new']}[/bold] new, {summary['changed']} changed, "
            f"{summary['unchanged']} unchanged, [red]{len(report.rejected)}[/red] rejected"
            + (f", {len(report.skipped)} skipped" if report.skipped else "")
            + (f", {len(pruned)} pruned" if pruned else "")
            + (f"; {len(report.enqueued)} CHUNK_SOURCE jobs queued for `holocron worker`" if report.enqueued else "")
        )
    if report.rejected:
        raise typer.Exit(EXIT_FAILED)


def extract(
    file: Annotated[
        Path, typer.Argument(help="A raw page, as it would be ingested.", exists=True, dir_okay=False, metavar="FILE")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the source type, title, metadata and text as JSON.")
    ] = False,
) -> None:
    """Print the text exactly as the indexer will see it."""
    from holocron.extract import ExtractionError
    from holocron.extract import extract as extract_text
    from holocron.ingest.detect import UnsupportedContent, detect_source_type

    try:
        detected = detect_source_type(file.read_bytes(), file.name)
        document = extract_text(detected.source_type, detected.text, origin=str(file))
    except (UnsupportedContent, ExtractionError) as exc:
        raise UserError(f"{file}: {exc}") from exc
    if as_json:
        print_json(
            {
                "source_type": detected.source_type,
                "title": document.title,
                "metadata": document.metadata,
                "text": document.text,
            }
        )
        return
    typer.echo(document.text)


def index(
    ctx: typer.Context,
    action: Annotated[
        str | None,
        typer.Argument(
            parser=one_of(INDEX_ACTIONS),
            metavar="ACTION",
            help="rebuild: rebuild the current space's vector index from the embedding table instead.",
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            parser=one_of(INDEX_MODES),
            metavar="MODE",
            help="incremental: only new or changed sources; full: re-check all.",
        ),
    ] = "incremental",
    source_manifest: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Index the sources of a JSON manifest: version, and sources with source_id, source_type, "
            "lake_uri or content, and tags.",
        ),
    ] = None,
    embed_model: ModelOption = None,
    embed_provider: ProviderOption = None,
    ollama_url: OllamaUrlOption = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            envvar="HOLOCRON_CHUNK_SIZE",
            parser=whole_number(1),
            metavar="CHARS",
            help="Characters per chunk (default: fitted to the model's input window).",
        ),
    ] = None,
    chunk_overlap: Annotated[
        int | None,
        typer.Option(
            envvar="HOLOCRON_CHUNK_OVERLAP",
            parser=whole_number(0),
            metavar="CHARS",
            help="Characters shared by neighbouring chunks.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            envvar="HOLOCRON_EMBED_BATCH_SIZE", parser=whole_number(1), metavar="N", help="Chunks per embedding call."
        ),
    ] = None,
    allow_root: AllowRootOption = None,
    keep_last_good: KeepLastGoodOption = None,
    as_json: JsonOption = False,
) -> None:
    """Chunk, embed and store new or changed sources.

    One recorded run extracts, chunks, embeds and stores everything new or changed. Exits 0 when it
    succeeded, 2 when it was partial (some sources or embedding batches failed), 1 when it failed.

    `holocron index rebuild` rebuilds the vector index of the current space instead.
    """
    if action is not None:
        from holocron.cli.search_cmds import index_rebuild

        index_rebuild(ctx, as_json=as_json)
        return
    if source_manifest is not None and not source_manifest.is_file():
        raise UserError(f"{source_manifest}: no such manifest")
    overrides = {
        "embed_model": embed_model,
        "embed_provider": embed_provider,
        "ollama_base_url": ollama_url,
        "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap,
        "embed_batch_size": batch_size,
        "keep_last_good": keep_last_good,
    }
    with (
        open_holocron(ctx, **overrides) as holo,
        track("chunk", None, err_console, unit="sources") as chunking,
        track("embed", None, err_console, unit="chunks") as embedding,
    ):
        report = holo.index(
            mode=mode,
            manifest=source_manifest,
            on_chunk_progress=chunking.advance,
            on_embed_progress=embedding.advance,
            on_embed_total=embedding.set_total,
            allow_roots=allow_root or (),
        )
    exit_code = {"succeeded": 0, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}[report.status]
    if report.ingest and report.ingest.rejected and not exit_code:
        exit_code = EXIT_PARTIAL
    if as_json:
        print_json(
            {
                "run_id": report.run_id,
                "space": report.space.name,
                "chunk_policy_version": report.policy.version,
                **report.metrics(),
                "errors": [{"source_id": source_id, "reason": reason} for source_id, reason in report.chunking.errors]
                + [{"source_id": None, "reason": reason} for reason in report.embedding.errors],
                "rejected": [
                    {"source_id": r.source_id, "reason": r.reason}
                    for r in (report.ingest.rejected if report.ingest else [])
                ],
                "warnings": report.warnings,
            }
        )
        raise typer.Exit(exit_code)
    for source_id, reason in report.chunking.errors:
        print_error(f"{source_id}: {reason}")
    for reason in report.embedding.errors[:5]:
        print_error(f"embedding: {reason}")
    if report.ingest:
        for item in report.ingest.rejected:
            print_error(f"{item.source_id}: {item.reason}")
    for warning in report.warnings:
        print_warning(warning)
    if report.chunking.capped_sources:
        print_warning(
            f"{len(report.chunking.capped_sources)} sources hit the cap of "
            f"{report.policy.max_chunks} chunks; {report.chunking.chunks_dropped} chunks were not indexed"
        )
    m = report.metrics()
    console.print(
        f"run [bold]{report.run_id}[/bold] in space [cyan]{report.space.name}[/cyan] (policy {report.policy.version})\n"
        f"  sources chunked {m['sources_chunked']}, failed {m['sources_failed']}; "
        f"chunks written {m['chunks_written']}; "
        f"embeddings written {m['embeddings_written']} in {m['model_calls']} model calls; {m['seconds']:.2f} s"
    )
    if report.vector_index is not None:
        upkeep = report.vector_index
        done = "built" if upkeep.rebuilt else f"{upkeep.replayed} changes added"
        console.print(
            f"  vector index ({upkeep.kind}): {upkeep.size} vectors, {done} in {upkeep.seconds:.2f} s"
            + (", saved" if upkeep.saved else "")
        )
    if report.status != "succeeded":
        print_error(f"run {report.status}: {len(report.errors)} sources or embedding batches failed")
    raise typer.Exit(exit_code)
