"""``holocron search``, ``evidence``, ``eval`` and ``index-rebuild``: questions against the current space."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from holocron.cli.common import (
    UserError,
    console,
    err_console,
    one_of,
    open_holocron,
    print_json,
    print_table,
    spoken,
    state,
    whole_number,
)
from holocron.cli.options import JsonOption
from holocron.cli.progress import track
from holocron.cli.running_server import search_via_server
from holocron.vocabulary import AGGREGATIONS, SOURCE_TYPES
from holocron.vocabulary import SEARCH_MODES as MODES


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(evidence)
    app.command(name="eval")(eval_command)
    app.command(name="index-rebuild")(index_rebuild)


ModeOption = Annotated[
    str | None,
    typer.Option(
        "--mode",
        envvar="HOLOCRON_SEARCH_MODE",
        parser=one_of(MODES),
        metavar="MODE",
        help=f"{spoken(MODES).capitalize()} (default: hybrid).",
    ),
]
SourceTypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source-type",
        parser=one_of(SOURCE_TYPES),
        metavar="TYPE",
        help=f"Only these source types (repeatable): {spoken(SOURCE_TYPES)}.",
    ),
]
SourceSystemOption = Annotated[
    list[str] | None,
    typer.Option("--source-system", metavar="SYSTEM", help="Only these source systems (repeatable)."),
]
TagOption = Annotated[
    list[str] | None, typer.Option("--tag", metavar="TAG", help="Sources with any of these tags (repeatable).")
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", metavar="DATE", help="Sources dated on or after this ISO date or time (UTC)."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", metavar="DATE", help="Sources dated before this ISO date or time (UTC).")
]
SourceIdOption = Annotated[
    list[str] | None, typer.Option("--source-id", metavar="SOURCE_ID", help="Only these sources (repeatable).")
]
MaxPerSourceOption = Annotated[
    int | None,
    typer.Option("--max-per-source", parser=whole_number(1), metavar="N", help="At most N hits from one source."),
]


def _date(value: str | None, option: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"{option}: not an ISO date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


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


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for.")],
    k: Annotated[
        int, typer.Option("-k", "--top-k", parser=whole_number(1, 1000), metavar="K", help="How many hits (1 to 1000).")
    ] = 10,
    mode: ModeOption = None,
    source_type: SourceTypeOption = None,
    source_system: SourceSystemOption = None,
    tag: TagOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source_id: SourceIdOption = None,
    max_per_source: MaxPerSourceOption = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Show each stage's rank and score (vector, keyword, fusion) for every hit."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hits as JSON (what POST /api/search returns).")
    ] = False,
) -> None:
    """Search the current embedding space.

    The query, its filters and its hits are recorded in the query log.
    """
    # The filters as the API takes them, without importing the retrieval layer: a running server validates them
    # as the in-process search does.
    given = {
        "source_types": source_type,
        "source_systems": source_system,
        "tags": tag,
        "source_ids": source_id,
        "since": _iso(_date(since, "--since")),
        "until": _iso(_date(until, "--until")),
    }
    request = {
        "query": query,
        "k": k,
        "mode": mode,
        "filters": {name: value for name, value in given.items() if value},
        "max_per_source": max_per_source,
    }
    served = search_via_server(state(ctx).settings(), request)
    if served is None:
        from holocron.api.models import SearchResponse

        filters = _filters(source_type, source_system, tag, since, until, source_id)
        with open_holocron(ctx) as holo:
            result = holo.search(query, k, mode=mode, filters=filters, max_per_source=max_per_source)
        answer, where = SearchResponse.from_result(result).model_dump(mode="json"), ""
    else:
        answer, where = served[0], f", via {served[1]}"
    if as_json:
        print_json(answer)
        return
    if not answer["hits"]:
        console.print("no hits (is anything indexed? run `holocron index`; are the filters too narrow?)")
        return
    label, meaning = score_meaning(answer["mode"], answer["policy"])
    columns = ["rank", label, *(["vector", "keyword"] if explain else []), "title", "snippet"]
    rows = []
    for h in answer["hits"]:
        stages = [_stage(h["vector_rank"], h["vector_score"]), _stage(h["keyword_rank"], h["keyword_score"])]
        place = " › ".join([h["title"] or h["source_id"], *h["heading_path"]])
        shown = bold(h["snippet"], h["highlights"])
        rows.append((h["rank"], f"{h['score']:.4f}", *(stages if explain else []), place, shown))
    print_table(
        f"{query!r} in {answer['space']}, {answer['mode']} ({answer['latency_ms']:.0f} ms{where})",
        columns,
        rows,
        wrap=("title", "snippet"),
    )
    console.print(Text(f"{label}: {meaning}", style="dim"))
    if explain:
        console.print(
            Text(
                "vector, keyword: the hit's rank in that list and its score there (cosine similarity; bm25 or "
                "ts_rank, higher is better); - : not in that list's candidates",
                style="dim",
            )
        )


def score_meaning(mode: str, policy: dict[str, Any]) -> tuple[str, str]:
    """The score column's name and one line that says what its numbers mean."""
    if mode == "vector":
        return "cosine", "cosine similarity of the question's and the chunk's vectors (1 = same direction)"
    if mode == "keyword":
        return "bm25", "keyword relevance (SQLite bm25 or PostgreSQL ts_rank, higher is better, no upper bound)"
    if policy.get("fusion") == "convex":
        return "convex", (
            "a weighted mix of the vector and keyword scores, each scaled to 0..1 over its own candidates "
            "(1 = best of both lists)"
        )
    k = int(policy.get("rrf_k", 60))
    return "rrf", (
        f"reciprocal-rank fusion, the sum of 1/({k} + rank) over the vector and keyword lists: "
        f"{2 / (k + 1):.4f} is first in both, {1 / (k + 1):.4f} first in one and absent from the other"
    )


def _stage(rank: int | None, score: float | None) -> str:
    return "-" if rank is None else f"#{rank} {score:.3f}" if score is not None else f"#{rank}"


def bold(text: str, spans: list[tuple[int, int]] | list[list[int]]) -> Text:
    """``text`` with the (start, end) ``spans`` in bold (a hit's snippet and the offsets of its query words)."""
    shown = Text(text)
    for start, end in spans:
        shown.stylize("bold", start, end)
    return shown


def evidence(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question the LLM will answer.")],
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--top-k",
            parser=whole_number(1, 1000),
            metavar="K",
            help="Hits to consider, 1 to 1000 (default: --max-items).",
        ),
    ] = None,
    mode: ModeOption = None,
    source_type: SourceTypeOption = None,
    source_system: SourceSystemOption = None,
    tag: TagOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source_id: SourceIdOption = None,
    max_per_source: MaxPerSourceOption = None,
    max_items: Annotated[
        int | None,
        typer.Option(
            envvar="HOLOCRON_EVIDENCE_MAX_ITEMS",
            parser=whole_number(1),
            metavar="N",
            help="Most items in the bundle (default: 8).",
        ),
    ] = None,
    max_total_bytes: Annotated[
        int | None,
        typer.Option(
            envvar="HOLOCRON_EVIDENCE_MAX_TOTAL_BYTES",
            parser=whole_number(1),
            metavar="BYTES",
            help="Most UTF-8 bytes of text in all (default: 12000).",
        ),
    ] = None,
    max_item_bytes: Annotated[
        int | None,
        typer.Option(
            envvar="HOLOCRON_EVIDENCE_MAX_ITEM_BYTES",
            parser=whole_number(1),
            metavar="BYTES",
            help="Most UTF-8 bytes of one item (default: 2000).",
        ),
    ] = None,
    as_text: Annotated[bool, typer.Option("--text", help="Print the prompt text instead of the JSON.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the bundle as JSON, what POST /api/evidence returns (the default).")
    ] = False,
) -> None:
    """Build and print the evidence bundle for a question.

    The bundle is bounded (items, bytes), stored, and is what the LLM would see: JSON or, with --text, the
    prompt text.
    """
    from holocron.evidence import BoundingPolicy, render_text

    if as_text and as_json:
        raise UserError("--text and --json exclude each other")

    filters = _filters(source_type, source_system, tag, since, until, source_id)
    with open_holocron(ctx) as holo:
        policy = BoundingPolicy.from_settings(
            holo.settings, max_items=max_items, max_total_bytes=max_total_bytes, max_item_bytes=max_item_bytes
        )
        bundle = holo.evidence(question, k=k, mode=mode, filters=filters, max_per_source=max_per_source, policy=policy)
    if as_text:
        typer.echo(render_text(bundle))
        return
    print_json(bundle.to_json())


def eval_command(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Option(metavar="FILE", help="The BEIR corpus.jsonl.", exists=True, dir_okay=False)],
    queries: Annotated[Path, typer.Option(metavar="FILE", help="The BEIR queries.jsonl.", exists=True, dir_okay=False)],
    qrels: Annotated[
        Path,
        typer.Option(
            metavar="FILE", help="The BEIR qrels TSV (query-id, corpus-id, score), or its folder.", exists=True
        ),
    ],
    folder: Annotated[
        Path | None,
        typer.Option(
            "--folder",
            metavar="DIR",
            help="Store for the eval, kept: a rerun reuses its embeddings (default: a temporary folder).",
        ),
    ] = None,
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            parser=one_of(MODES),
            metavar="MODE",
            help=f"Modes to score, repeatable: {spoken(MODES)} (default: all three).",
        ),
    ] = None,
    aggregate: Annotated[
        str,
        typer.Option(
            "--aggregate",
            parser=one_of(AGGREGATIONS),
            metavar="HOW",
            help="Chunks to documents: max (the best chunk) or sum2 (the sum of the two best chunks' scores).",
        ),
    ] = "max",
    as_json: JsonOption = False,
) -> None:
    """Score retrieval on a BEIR corpus (nDCG, recall, MRR).

    Reports nDCG@10, recall@10, recall@100 and MRR@10 per mode. The corpus is indexed into a store of its
    own, then every query is run in each mode.
    """
    from holocron.eval.runner import EvalProgress, run_eval

    modes = mode or list(MODES)
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
                aggregate=aggregate,
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


def index_rebuild(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Rebuild the current space's vector index.

    The index is rebuilt from the embedding table and saved beside the database (SQLite).
    """
    with open_holocron(ctx) as holo:
        report = holo.rebuild_index(reason="holocron index rebuild")
        space = holo.space.name
    if as_json:
        print_json({"space": space, **report.to_json()})
        return
    console.print(
        f"space [cyan]{space}[/cyan]: {report.kind} index of {report.size} vectors rebuilt in "
        f"{report.seconds:.2f} s" + (" and saved" if report.saved else "") + f" ({report.reason})"
    )
