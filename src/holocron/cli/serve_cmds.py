"""``holocron serve`` (API, dashboard and /metrics in one process) and ``holocron status`` (the same overview)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from holocron.cli.common import (
    UserError,
    console,
    err_console,
    open_holocron,
    print_json,
    print_table,
    state,
    whole_number,
)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(status)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            envvar="HOLOCRON_API_HOST",
            metavar="ADDRESS",
            help=(
                "Address to listen on (default: 127.0.0.1). Beyond loopback HOLOCRON_API_TOKEN (16 characters or "
                "more) must be set."
            ),
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            envvar="HOLOCRON_API_PORT",
            parser=whole_number(1, 65535),
            metavar="PORT",
            help="Port to listen on (default: 8765).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API, the dashboard and /metrics.

    Beyond loopback every request but /health and /ready needs the bearer token in HOLOCRON_API_TOKEN. A token
    that is blank, shorter than 16 characters or padded with whitespace is refused, and so is starting then.
    """
    import uvicorn

    from holocron.api.app import create_app
    from holocron.api.auth import AuthConfigError

    settings = state(ctx).settings(api_host=host, api_port=port)
    try:
        app = create_app(settings)
    except AuthConfigError as exc:
        raise UserError(str(exc)) from None
    auth = app.state.holocron_server.auth
    err_console.print(f"holocron serving on http://{settings.api_host}:{settings.api_port}/  ({auth.describe()})")
    # log_config=None: uvicorn's lines go through our handlers (key=value or JSON, secrets redacted).
    from holocron.cli.running_server import announced

    with announced(settings):  # holocron search on this machine asks this process while it listens
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)


def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the overview as JSON (what GET /api/status returns).")
    ] = False,
) -> None:
    """The dashboard's overview in the terminal.

    Queue by status and type, recent runs, dead letters, embedding spaces with their coverage, and sources.
    """
    with open_holocron(ctx) as holo:
        overview = holo.overview()
    if as_json:
        print_json(overview)
        return
    show(overview)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def show(o: dict[str, Any]) -> None:
    q = o["queue"]
    console.print(
        f"[bold]Queue[/bold]  waiting {q['depth']}  available now {q['available']}  "
        f"oldest available {_age(q['oldest_available_age_s'])}  total {q['total']}"
    )
    statuses = list(q["by_status"])
    print_table(
        None,
        ["type", *statuses],
        [[t, *(c[s] for s in statuses)] for t, c in q["by_type"].items()] + [["total", *q["by_status"].values()]],
    )
    buckets = o["throughput"]["buckets"]
    recent = buckets[-1] if buckets else None
    if recent:
        total = {k: sum(b[k] for b in buckets) for k in ("jobs_succeeded", "chunks_written", "embeddings_written")}
        minutes = o["throughput"]["bucket_seconds"] * len(buckets) // 60
        console.print(
            f"[bold]Last {minutes} min[/bold]  jobs succeeded {total['jobs_succeeded']}  "
            f"chunks written {total['chunks_written']}  embeddings written {total['embeddings_written']}"
        )
    for title, key in (("Dead letters", "dead_letters"), ("Failed, awaiting retry", "failed_jobs")):
        block = o[key]
        if block["total"]:
            print_table(
                f"{title} ({block['total']})",
                ["job", "type", "attempts", "reason"],
                [
                    [j["job_id"], j["job_type"], f"{j['attempts']}/{j['max_attempts']}", j["reason"]]
                    for j in block["items"]
                ],
                wrap=("reason",),
            )
    if o["runs"]:
        print_table(
            "Recent runs",
            ["started", "type", "status", "seconds", "chunks", "embeddings", "error"],
            [
                [
                    (r["started_utc"] or "")[:19].replace("T", " "),
                    r["run_type"],
                    r["status"],
                    r["seconds"],
                    r["metrics"].get("chunks_written"),
                    r["metrics"].get("embeddings_written"),
                    r["error"],
                ]
                for r in o["runs"]
            ],
            wrap=("error",),
        )
    print_table(
        "Embedding spaces",
        ["space", "model", "dims", "embedded / chunks", "coverage"],
        [
            [
                s["name"],
                s["model_name"],
                s["dimensions"],
                f"{s['chunks_embedded']} / {s['chunks_total']}",
                "-" if s["coverage"] is None else f"{s['coverage'] * 100:.1f}%",
            ]
            for s in o["spaces"]
        ],
    )
    src = o["sources"]
    by_status = ", ".join(f"{k} {v}" for k, v in src["by_status"].items()) or "none"
    console.print(f"[bold]Sources[/bold]  {src['total']} ({by_status}), {src['chunks']} chunks")
