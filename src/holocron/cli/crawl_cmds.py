"""``holocron crawl``: fetch the configured sources; ``crawl pause|resume|drain|status`` steer and show it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holocron.cli.common import (
    HolocronTyper,
    UserError,
    console,
    open_holocron,
    print_json,
    print_table,
    print_warning,
    whole_number,
)
from holocron.cli.options import JsonOption
from holocron.cli.progress import track

if TYPE_CHECKING:
    from holocron.crawl.runner import CrawlStats

app = HolocronTyper(
    help="Crawl wikis, OpenAlex and plain pages politely into the raw-record store.",
    invoke_without_command=True,
)

SourceFilter = Annotated[
    list[str] | None,
    typer.Option("--source-filter", "--source", metavar="NAME", help="Only this source; repeatable (default: all)."),
]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="crawl")


@app.callback()
def crawl_cmd(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", metavar="FILE", help="sources.toml (or .yaml): what to crawl, and how.")
    ] = None,
    seed: Annotated[
        bool,
        typer.Option("--seed/--no-seed", help="Queue the configured seeds first (--no-seed: only what is queued)."),
    ] = True,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask every page fetched before again, conditionally (ETag, sha256).")
    ] = False,
    max_items: Annotated[
        int | None,
        typer.Option("--max-items", parser=whole_number(1), metavar="N", help="Work items per source, at most."),
    ] = None,
    max_workers: Annotated[
        int, typer.Option("--max-workers", parser=whole_number(1, 256), metavar="N", help="Requests in flight.")
    ] = 4,
    sources: SourceFilter = None,
    index: Annotated[
        bool, typer.Option("--index/--no-index", help="Queue new and changed pages for indexing (the workers').")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Crawl until nothing is left to fetch (or a drain, or Ctrl-C: the requests in flight finish).

    Exit code 0 when every item completed, 2 when some failed (their reasons are in `crawl status`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from holocron.crawl.config import ConfigError, load_config

    if config is None:
        raise UserError("crawl needs --config FILE (see docs/crawl.md for its format)")
    try:
        loaded = load_config(config)
        loaded.build(sources or ())
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    with open_holocron(ctx) as holo:
        crawler = holo.crawler(loaded, only=sources or (), max_workers=max_workers, max_items=max_items, index=index)
        queued = crawler.seed() if seed else 0
        reopened = crawler.refresh() if refresh else 0
        names = list(crawler.sources)
        with track("crawl", None, console, unit="items") as tracker:
            done = {"n": 0}

            def progress(stats: CrawlStats) -> None:
                finished = stats.completed + stats.failed
                left = holo.crawl_status(names)["items"]
                tracker.set_total(finished + left.get("pending", 0) + left.get("claimed", 0))
                tracker.advance(finished - done["n"])
                done["n"] = finished

            crawler.progress = progress
            stats = crawler.run()
    report: dict[str, Any] = {"run_id": crawler.run_id, "seeded": queued, "reopened": reopened, **stats.to_json()}
    if as_json:
        print_json(report)
    else:
        console.print(
            f"crawled {stats.fetched} requests: {stats.stored} pages stored, {stats.unchanged + stats.not_modified} "
            f"unchanged, {stats.discovered} items discovered, {stats.failed} failed, {stats.retried} retried "
            f"({report['items_per_second']} items/s)"
        )
        if stats.capped:
            print_warning(f"the max-items cap left {stats.capped} discovered items out")
        for reason, count in stats.errors.most_common(5):
            print_warning(f"{count} x {reason}")
    if stats.failed:
        raise typer.Exit(2)


def _control(ctx: typer.Context, state: str, source: str | None, reason: str | None, as_json: bool) -> None:
    with open_holocron(ctx) as holo:
        holo.crawl_control(state, source=source, reason=reason)  # type: ignore[arg-type]
    if as_json:
        print_json({"scope": source or "*", "state": state, "reason": reason})
    else:
        console.print(f"crawl {source or 'of every source'}: {state} (every crawler obeys within a second)")


SourceOption = Annotated[str | None, typer.Option("--source", metavar="NAME", help="One source (default: all).")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", metavar="TEXT", help="Why, for whoever looks at `crawl status`.")
]


@app.command("pause")
def pause_cmd(
    ctx: typer.Context, source: SourceOption = None, reason: ReasonOption = None, as_json: JsonOption = False
) -> None:
    """Stop claiming new items, on every machine; requests in flight finish. `crawl resume` goes on."""
    _control(ctx, "paused", source, reason, as_json)


@app.command("resume")
def resume_cmd(
    ctx: typer.Context, source: SourceOption = None, reason: ReasonOption = None, as_json: JsonOption = False
) -> None:
    """Let paused or draining crawlers claim again."""
    _control(ctx, "running", source, reason, as_json)


@app.command("drain")
def drain_cmd(
    ctx: typer.Context, source: SourceOption = None, reason: ReasonOption = None, as_json: JsonOption = False
) -> None:
    """Finish what is in flight, then every crawler exits; queued items stay for the next crawl."""
    _control(ctx, "draining", source, reason, as_json)


@app.command("status")
def status_cmd(ctx: typer.Context, sources: SourceFilter = None, as_json: JsonOption = False) -> None:
    """Work items by state and source, errors by reason, the latest runs with their rate."""
    with open_holocron(ctx) as holo:
        overview = holo.crawl_status(sources or None)
    if as_json:
        print_json(overview)
        return
    states = ("pending", "claimed", "completed", "failed")
    rows = [[name, *(str(counts.get(s, 0)) for s in states)] for name, counts in sorted(overview["by_source"].items())]
    print_table("work items", ["source", *states], rows)
    if overview["errors"]:
        print_table(
            "failures",
            ["reason", "items", "example"],
            [[e["reason"], str(e["count"]), e["example"]] for e in overview["errors"]],
            wrap=("example",),
        )
    for run in overview["runs"][:3]:
        stats = run["stats"]
        rate = stats.get("items_per_second")
        console.print(
            f"run {run['run_id'][:8]} {run['status']} on {run['host']} since {run['started_utc']}: "
            f"{stats.get('completed', 0)} completed, {stats.get('failed', 0)} failed"
            + (f", {rate} items/s" if rate is not None else "")
        )
    paused = {scope: state for scope, state in overview["control"].items() if state != "running"}
    if paused:
        console.print("control: " + ", ".join(f"{scope} {state}" for scope, state in sorted(paused.items())))
    pending = sum(overview["by_source"].get(n, {}).get("pending", 0) for n in overview["by_source"])
    latest = overview["runs"][0]["stats"] if overview["runs"] else {}
    if pending and latest.get("items_per_second"):
        console.print(f"ETA at the last run's rate: {pending / latest['items_per_second']:.0f} s for {pending} items")
