"""``holocron search``, ``evidence``, ``eval`` and ``index-rebuild``: questions against the current space."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from holocron.cli.common import UserError, console, err_console, open_holocron, print_json, print_table, state
from holocron.cli.progress import track


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(evidence)
    app.command(name="eval")(eval_command)
    app.command(name="index-rebuild")(index_rebuild)


ModeOption = Annotated[
    str | None, typer.Option("--mode", help="vector, keyword or hybrid (default: the configured mode).")
]
SourceTypeOption = Annotated[
    list[str] | None, typer.Option("--source-type", help="Only these source types (repeatable).")
]
SourceSystemOption = Annotated[
    list[str] | None, typer.Option("--source-system", help="Only these source systems (repeatable).")
]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="Sources with any of these tags (repeatable).")]
SinceOption = Annotated[str | None, typer.Option("--since", help="Sources dated on or after (ISO date or time, UTC).")]
UntilOption = Annotated[str | None, typer.Option("--until", help="Sources dated before (ISO date or time, UTC).")]
SourceIdOption = Annotated[list[str] | None, typer.Option("--source-id", help="Only these sources (repeatable).")]
MaxPerSourceOption = Annotated[
    int | None, typer.Option("--max-per-source", min=1, help="At most this many hits from one source.")
]


def _date(value: str | None, option: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"{option}: not an ISO date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(
    source_type: list[str] | None,
    source_system: list[str] | None,
    tag: list[str] | None,
    since: str | None,
    until: str | None,
    source_id: list[str] | None,
) -> Any:
    from holocron.retrieval.filters import SearchFilters

    return SearchFilters.of(
        source_types=source_type or (),
        source_systems=source_system or (),
        tags=tag or (),
        source_ids=source_id or (),
        since=_date(since, "--since"),
        until=_date(until, "--until"),
    )


def _mode(mode: str | None) -> str | None:
    from holocron.retrieval.config import MODES

    if mode is not None and mode not in MODES:
        raise UserError(f"--mode is one of {', '.join(MODES)}")
    return mode


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=1000, help="How many hits.")] = 10,
    mode: ModeOption = None,
    source_type: SourceTypeOption = None,
    source_system: SourceSystemOption = None,
    tag: TagOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source_id: SourceIdOption = None,
    max_per_source: MaxPerSourceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Hits as JSON.")] = False,
) -> None:
    """Search the current embedding space; the query, its filters and hits are logged."""
    filters = _filters(source_type, source_system, tag, since, until, source_id)
    with open_holocron(ctx) as holo:
        result = holo.search(query, k, mode=_mode(mode), filters=filters, max_per_source=max_per_source)
    if as_json:
        print_json(
            {
                "retrieval_id": result.retrieval_id,
                "space": result.space.name,
                "mode": result.mode,
                "filters": result.filters.to_json(),
                "latency_ms": round(result.latency_ms, 2),
                "hits": [
                    {
                        "rank": h.rank,
                        "score": round(h.score, 6),
                        "evidence_id": h.evidence_id,
                        "chunk_id": h.chunk_id,
                        "source_id": h.source_id,
                        "title": h.title,
                        "start": h.start_offset,
                        "end": h.end_offset,
                        "vector_rank": h.vector_rank,
                        "keyword_rank": h.keyword_rank,
                        "text": h.text,
                    }
                    for h in result.hits
                ],
            }
        )
        return
    if not result.hits:
        console.print("no hits (is anything indexed? run `holocron index`; are the filters too narrow?)")
        return
    print_table(
        f"{query!r} in {result.space.name}, {result.mode} ({result.latency_ms:.0f} ms)",
        ["rank", "score", "title", "snippet"],
        [(h.rank, f"{h.score:.3f}", h.title or h.source_id, h.snippet(160)) for h in result.hits],
    )


def evidence(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question the LLM will answer.")],
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, max=1000, help="Hits to consider.")] = None,
    mode: ModeOption = None,
    source_type: SourceTypeOption = None,
    source_system: SourceSystemOption = None,
    tag: TagOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source_id: SourceIdOption = None,
    max_per_source: MaxPerSourceOption = None,
    max_items: Annotated[int | None, typer.Option(min=1, help="Most items in the bundle.")] = None,
    max_total_bytes: Annotated[int | None, typer.Option(min=1, help="Most UTF-8 bytes of text in all.")] = None,
    max_item_bytes: Annotated[int | None, typer.Option(min=1, help="Most UTF-8 bytes of one item.")] = None,
    as_text: Annotated[bool, typer.Option("--text", help="Prompt text instead of the JSON document.")] = False,
) -> None:
    """Build, store and print the bounded evidence bundle for a question, as the LLM would see it."""
    from holocron.evidence import BoundingPolicy, render_text

    filters = _filters(source_type, source_system, tag, since, until, source_id)
    with open_holocron(ctx) as holo:
        s = holo.settings
        policy = BoundingPolicy(
            max_items=max_items or s.evidence_max_items,
            max_total_bytes=max_total_bytes or s.evidence_max_total_bytes,
            max_item_bytes=max_item_bytes or s.evidence_max_item_bytes,
        )
        bundle = holo.evidence(
            question, k=k, mode=_mode(mode), filters=filters, max_per_source=max_per_source, policy=policy
        )
    if as_text:
        typer.echo(render_text(bundle))
        return
    print_json(bundle.to_json())


def eval_command(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl.", exists=True, dir_okay=False)],
    queries: Annotated[Path, typer.Option(help="BEIR queries.jsonl.", exists=True, dir_okay=False)],
    qrels: Annotated[Path, typer.Option(help="BEIR qrels TSV (query-id, corpus-id, score).", exists=True)],
    folder: Annotated[
        Path | None,
        typer.Option("--folder", help="Store for the eval (kept; a rerun reuses its embeddings). Default: temp."),
    ] = None,
    mode: Annotated[list[str] | None, typer.Option("--mode", help="Modes to score (default all three).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Results as JSON.")] = False,
) -> None:
    """Index a BEIR corpus into its own store and report nDCG@10, recall@10/100 and MRR@10 per mode."""
    from holocron.eval.runner import EvalProgress, run_eval
    from holocron.retrieval.config import MODES

    modes = mode or list(MODES)
    for name in modes:
        _mode(name)
    if qrels.is_dir():
        candidates = sorted(qrels.glob("*.tsv"))
        if len(candidates) != 1:
            raise UserError(f"{qrels}: give one qrels file")
        qrels = candidates[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="holocron-eval-") as scratch:
        home = (folder or Path(scratch)).resolve()
        settings = state(ctx).settings(home=home).model_copy(update={"database_url": None, "home": home})
        with (
            track("register", None, err_console, unit="docs") as registering,
            track("chunk", None, err_console, unit="docs") as chunking,
            track("embed", None, err_console, unit="chunks") as embedding,
            track("query", None, err_console, unit="queries") as querying,
        ):
            report = run_eval(
                corpus,
                queries,
                qrels,
                settings,
                modes=modes,
                progress=EvalProgress(
                    on_register=registering.advance,
                    on_chunk=chunking.advance,
                    on_embed_total=embedding.set_total,
                    on_embed=embedding.advance,
                    on_query_total=querying.set_total,
                    on_query=querying.advance,
                ),
            )
    seconds = time.perf_counter() - started
    if as_json:
        print_json({**report.to_json(), "seconds": round(seconds, 1)})
        return
    print_table(
        f"{corpus.parent.name or corpus.name}: {report.documents} documents, {report.chunks} chunks "
        f"({report.policy}), {report.space}",
        ["mode", "nDCG@10", "recall@10", "recall@100", "MRR@10", "queries", "seconds"],
        [
            (
                row.mode,
                f"{row.metrics['ndcg@10']:.4f}",
                f"{row.metrics['recall@10']:.4f}",
                f"{row.metrics['recall@100']:.4f}",
                f"{row.metrics['mrr@10']:.4f}",
                row.queries,
                f"{row.seconds:.1f}",
            )
            for row in report.rows
        ],
    )
    console.print(f"indexing {report.index_seconds:.1f} s; total {seconds:.1f} s; fusion {report.settings}")


def index_rebuild(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Rebuild the current space's vector index from the embedding table (and save it beside the database)."""
    with open_holocron(ctx) as holo:
        report = holo.searcher.index.rebuild(reason="holocron index-rebuild")
        space = holo.space.name
    if as_json:
        print_json({"space": space, **report.to_json()})
        return
    console.print(
        f"space [cyan]{space}[/cyan]: {report.kind} index of {report.size} vectors rebuilt in "
        f"{report.seconds:.2f} s" + (" and saved" if report.saved else "")
    )
