"""``holocron llm ...``: ask the corpus questions, and read the answers with their lineage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holocron.cli.common import (
    HolocronTyper,
    UserError,
    console,
    one_of,
    open_holocron,
    print_json,
    print_table,
    whole_number,
)
from holocron.cli.options import JsonOption, LimitOption, OffsetOption

if TYPE_CHECKING:
    from holocron.llm.queue import LlmJob

app = HolocronTyper(
    help="The LLM runtime: enqueue interrogations, list runs, show answers, artifacts and lineage, refresh.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="llm")


def _short(text: Any, width: int = 60) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _params(values: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values or []:
        name, sep, given = value.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param takes NAME=VALUE, not {value!r}")
        params[name.strip()] = given
    return params


def llm_jobs_table(title: str, jobs: list[LlmJob]) -> None:
    print_table(
        title,
        ["id", "interrogation", "status", "attempts", "subject", "worker", "last error"],
        [
            (
                j.job_id,
                j.interrogation_key,
                j.status.value,
                f"{j.attempt_count}/{j.max_attempts}",
                _short(
                    (j.evidence_ref or {}).get("source_id")
                    or (j.evidence_ref or {}).get("query")
                    or j.input.get("params")
                ),
                j.locked_by,
                _short(j.last_error),
            )
            for j in jobs
        ],
        wrap=("last error", "subject"),
    )


@app.command()
def enqueue(
    ctx: typer.Context,
    interrogation: Annotated[str, typer.Argument(metavar="INTERROGATION", help="Its key (see `llm types`).")],
    sources: Annotated[
        list[str] | None, typer.Option("--sources", "--source", metavar="ID", help="Ask about these sources.")
    ] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="Ask about every source that has chunks.")] = False,
    queries: Annotated[
        list[str] | None, typer.Option("--query", metavar="TEXT", help="Ask about what a search for TEXT finds.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", metavar="NAME=VALUE", help="An interrogation parameter.")
    ] = None,
    priority: Annotated[int | None, typer.Option(metavar="N", help="Higher runs first.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue one job per source or query; a subject already waiting for an answer keeps its job.

    Everything is validated before anything is stored: an unknown interrogation, a missing parameter or an
    unknown source exits 1 and queues nothing.
    """
    from holocron.jobs.models import InvalidPayloadError
    from holocron.llm.interrogations import InterrogationError

    with open_holocron(ctx) as holo:
        try:
            enqueued = holo.llm_enqueue(
                interrogation,
                source_ids=[s for value in sources or [] for s in value.split(",") if s],
                all_sources=all_sources,
                queries=queries or [],
                params=_params(param),
                priority=priority,
            )
        except (InvalidPayloadError, InterrogationError) as exc:
            raise UserError(str(exc)) from exc
    created = [e.job.job_id for e in enqueued if e.created]
    existing = [e.job.job_id for e in enqueued if not e.created]
    if as_json:
        print_json({"job_ids": created, "existing_job_ids": existing})  # the shape of `jobs enqueue --json`
        return
    console.print(
        f"queued {len(created)} {interrogation} jobs"
        + (
            f"; {len(existing)} already queued, unfinished or dead-lettered ({', '.join(map(str, existing[:10]))})"
            if existing
            else ""
        )
    )


@app.command()
def types(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The interrogations: key, version, scope, parameters, where each was defined."""
    with open_holocron(ctx) as holo:
        rows = [i.to_json() for i in holo.interrogations.all()]
    if as_json:
        print_json(rows)
        return
    print_table(
        "interrogations",
        ["key", "version", "scope", "parameters", "enabled", "origin", "description"],
        [
            (r["key"], r["version"], r["scope"], ", ".join(r["params"]), r["enabled"], r["origin"], r["description"])
            for r in rows
        ],
        wrap=("description",),
    )


@app.command()
def jobs(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            parser=one_of(("NEW", "RUNNING", "SUCCEEDED", "FAILED", "DEADLETTER", "CANCELLED")),
            metavar="STATUS",
            help="Only jobs in this status.",
        ),
    ] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """The LLM queue's jobs, newest first."""
    from holocron.jobs.models import parse_status

    with open_holocron(ctx) as holo:
        found = holo.llm_jobs.list(statuses=[parse_status(status)] if status else None, limit=limit, offset=offset)
    if as_json:
        print_json([job.to_json() for job in found])
        return
    llm_jobs_table("llm jobs", found)


@app.command()
def runs(
    ctx: typer.Context,
    interrogation: Annotated[str | None, typer.Option(metavar="KEY", help="Only this interrogation.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            parser=one_of(("RUNNING", "SUCCEEDED", "FAILED")), metavar="STATUS", help="Only runs in this status."
        ),
    ] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Only answers built on replaced chunks.")] = False,
    job_id: Annotated[
        int | None, typer.Option(parser=whole_number(1), metavar="JOB_ID", help="Only the runs of this job.")
    ] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """LLM runs, newest first, with their model, metrics and whether the answer is stale."""
    with open_holocron(ctx) as holo:
        listing = holo.llm_runs(
            interrogation=interrogation,
            status=status,
            stale=True if stale else None,
            job_id=job_id,
            limit=limit,
            offset=offset,
        )
    if as_json:
        print_json(listing.items)
        return
    print_table(
        f"llm runs ({listing.total})",
        ["run", "job", "interrogation", "status", "stale", "model", "attempts", "model s", "other s", "error"],
        [
            (
                r["run_id"][:8],
                r["job_id"],
                r["interrogation_key"],
                r["status"],
                "stale" if r["stale"] else "",
                r["model_name"] or "",
                r["metrics_json"].get("attempts", ""),
                r["metrics_json"].get("model_seconds", ""),
                r["metrics_json"].get("outside_model_seconds", ""),
                _short(r["error"]),
            )
            for r in listing.items
        ],
        wrap=("error",),
    )


def _run_id(holo: Any, prefix: str) -> str:
    """A run id, or an unambiguous prefix of one (as ``llm runs`` prints it)."""
    if len(prefix) == 36:
        return prefix
    matches = [r["run_id"] for r in holo.llm_runs(limit=10_000).items if r["run_id"].startswith(prefix)]
    if len(matches) != 1:
        raise UserError(f"no run {prefix}" if not matches else f"{prefix} names {len(matches)} runs; give more of it")
    return str(matches[0])


@app.command()
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run (or the start of its id).")],
    as_json: JsonOption = False,
) -> None:
    """One run: model, metrics, the parsed answer, its artifacts and the chunks it was built from."""
    with open_holocron(ctx) as holo:
        run = holo.llm_run(_run_id(holo, run_id))
    if run is None:
        raise UserError(f"no run {run_id}")
    if as_json:
        print_json(run)
        return
    skip = {"artifacts", "evidence", "parsed_output", "metrics_json", "options_json", "input_json"}
    rows = [(key, value) for key, value in run.items() if key not in skip]
    rows.append(("parsed_output", json.dumps(run["parsed_output"], ensure_ascii=False)))
    rows.append(("metrics", json.dumps(run["metrics_json"], default=str)))
    print_table(f"llm run {run['run_id']}", ["field", "value"], rows, wrap=("value",))
    print_table(
        "evidence (lineage)",
        ["#", "evidence id", "source", "chunk", "chunk exists"],
        [
            (e["sequence"], e["evidence_id"], e["source_id"], (e["chunk_id"] or "")[:12], e["chunk_exists"])
            for e in run["evidence"]
        ],
    )
    print_table(
        "artifacts",
        ["type", "bytes", "sha256", "lake file"],
        [(a["artifact_type"], a["byte_count"], a["content_sha256"][:12], a["content_ref"]) for a in run["artifacts"]],
    )


@app.command()
def artifacts(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run (or the start of its id).")],
    artifact_type: Annotated[
        str | None, typer.Option("--type", metavar="TYPE", help="Print this artifact's content.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A run's artifacts; with --type, one artifact's content as stored."""
    with open_holocron(ctx) as holo:
        found = holo.llm_artifacts(_run_id(holo, run_id))
    if artifact_type is not None:
        chosen = [a for a in found if a["artifact_type"] == artifact_type]
        if not chosen:
            kinds = ", ".join(a["artifact_type"] for a in found) or "none"
            raise UserError(f"run {run_id} has no {artifact_type} artifact; it has: {kinds}")
        content = chosen[0]["content_json"]
        if isinstance(content, str) and not as_json:
            typer.echo(content)
        else:
            print_json(content)
        return
    if as_json:
        print_json(found)
        return
    print_table(
        f"artifacts of run {run_id}",
        ["type", "bytes", "sha256", "lake file"],
        [(a["artifact_type"], a["byte_count"], a["content_sha256"][:12], a["content_ref"]) for a in found],
    )


@app.command()
def refresh(
    ctx: typer.Context,
    interrogation: Annotated[str | None, typer.Option(metavar="KEY", help="Only this interrogation.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask again exactly the answers whose evidence chunks were replaced since (a source edit or delete).

    Idempotent: a second refresh before the workers run queues nothing new.
    """
    with open_holocron(ctx) as holo:
        enqueued = holo.llm_refresh(interrogation=interrogation)
    created = [e.job.job_id for e in enqueued if e.created]
    existing = [e.job.job_id for e in enqueued if not e.created]
    if as_json:
        print_json({"job_ids": created, "existing_job_ids": existing})  # the shape of `jobs enqueue --json`
        return
    console.print(
        f"{len(created)} stale answers queued again" + (f"; {len(existing)} already queued" if existing else "")
    )


@app.command()
def pages(ctx: typer.Context, limit: LimitOption = 1000, as_json: JsonOption = False) -> None:
    """Classified pages (``sem.source_page``), with whether each answer is stale."""
    with open_holocron(ctx) as holo:
        rows = holo.source_pages(limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"classified pages ({len(rows)})",
        ["page", "title", "primary type", "confidence", "stale", "run"],
        [
            (
                r["page_id"],
                _short(r["title"], 40),
                r["primary_type"],
                f"{r['confidence']:.2f}" if r["confidence"] is not None else "",
                "stale" if r["stale"] else "",
                r["run_id"][:8],
            )
            for r in rows
        ],
        wrap=("page",),
    )
