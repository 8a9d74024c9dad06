"""``holocron worker``, ``holocron jobs ...`` and ``holocron runs ...``: the queue from the command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holocron.cli.common import UserError, console, err_console, open_holocron, print_json, print_table

if TYPE_CHECKING:
    from holocron.jobs.models import Job, JobStatus, JobType

jobs_app = typer.Typer(help="The job queue: list, inspect, retry, cancel and enqueue jobs.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs: one per job execution or index, with metrics and artifacts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(runs_app, name="runs")


def _types(values: list[str] | None) -> list[JobType] | None:
    from holocron.jobs.models import UnknownJobTypeError, parse_job_type

    if not values:
        return None
    try:
        return [parse_job_type(part.strip()) for value in values for part in value.split(",") if part.strip()]
    except UnknownJobTypeError as exc:
        raise UserError(str(exc)) from exc


def _statuses(values: list[str] | None) -> list[JobStatus] | None:
    from holocron.jobs.models import parse_status

    if not values:
        return None
    try:
        return [parse_status(part.strip()) for value in values for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# --- worker ----------------------------------------------------------------------------------------------------


def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run until nothing is ready, then exit.")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="Keep waiting for new jobs (the default).")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the jobs this worker would take next; take none.")
    ] = False,
    list_types: Annotated[bool, typer.Option("--list-types", help="List the job types and exit.")] = False,
    worker_id: Annotated[
        str | None, typer.Option(help="Name in locked_by and run rows (default host:pid:rand).")
    ] = None,
    poll_seconds: Annotated[
        float | None, typer.Option(help="Longest sleep while the queue is empty (default from settings).")
    ] = None,
    lease_seconds: Annotated[
        float | None, typer.Option(help="Lease per claim; heartbeats renew it (default from settings).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once, as threads sharing one model.")] = 1,
    types: Annotated[
        list[str] | None, typer.Option("--types", help="Only these job types (repeat or comma-separate).")
    ] = None,
    max_jobs: Annotated[int | None, typer.Option(help="Exit after this many jobs.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT while working.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Claim and run jobs. SIGINT/SIGTERM stop it gracefully: the current job is finished or released."""
    from holocron.jobs.registry import default_registry

    if list_types:
        registry = default_registry()
        rows: list[dict[str, Any]] = [
            {
                "type": spec.job_type.value,
                "description": spec.description,
                "priority": spec.payload_model.default_priority,
                "max_attempts": spec.payload_model.default_max_attempts,
                "fields": sorted(spec.payload_model.model_fields),
            }
            for spec in (registry.spec(t) for t in registry.types())
        ]
        if as_json:
            print_json(rows)
            return
        print_table(
            "job types",
            ["type", "description", "priority", "attempts", "payload fields"],
            [(r["type"], r["description"], r["priority"], r["max_attempts"], ", ".join(r["fields"])) for r in rows],
        )
        return
    if once and loop:
        raise UserError("--once and --loop exclude each other")
    if concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    from holocron.jobs.queue import JobQueue
    from holocron.jobs.worker import Worker, WorkerOptions, default_worker_id

    job_types = _types(types)
    with open_holocron(ctx) as holo:
        settings = holo.settings
        if metrics_port is not None:
            from holocron.observability.metrics import start_metrics_server

            start_metrics_server(metrics_port, holo.db)
        space_ids = [holo.space.embedding_space_id]
        if dry_run:
            upcoming = JobQueue(holo.db).peek(types=job_types, spaces=space_ids, limit=20)
            if as_json:
                print_json([job.to_json() for job in upcoming])
                return
            if not upcoming:
                console.print(f"nothing ready for space {holo.space.name}")
                return
            _jobs_table(f"next jobs for space {holo.space.name} (dry run: none taken)", upcoming)
            return
        options = WorkerOptions(
            worker_id=worker_id or default_worker_id(),
            types=job_types,
            spaces=space_ids,
            lease_seconds=lease_seconds or settings.lease_seconds,
            poll_seconds=poll_seconds or settings.worker_poll_seconds,
            concurrency=concurrency,
            drain=once,
            max_jobs=max_jobs,
        )
        err_console.print(
            f"worker [bold]{options.worker_id}[/bold] serving [cyan]{holo.space.name}[/cyan]"
            f" ({'until the queue is empty' if once else 'until stopped'})"
        )
        report = Worker(holo, options).run()
    if as_json:
        print_json(report.to_json())
        return
    console.print(
        f"worker {report.worker_id}: {report.claimed} claimed, {report.succeeded} succeeded, "
        f"{report.failed} failed (will retry), {report.deadlettered} dead-lettered, {report.released} released, "
        f"{report.lost} lost leases in {report.seconds:.1f} s"
        + (f"; stopped: {report.stop_reason}" if report.stop_reason else "")
    )


# --- jobs ------------------------------------------------------------------------------------------------------


def _jobs_table(title: str, jobs: list[Job]) -> None:
    print_table(
        title,
        ["id", "type", "status", "prio", "attempts", "space", "worker", "available", "updated", "last error"],
        [
            (
                j.job_id,
                j.job_type.value,
                j.status.value,
                j.priority,
                f"{j.attempt_count}/{j.max_attempts}",
                j.embedding_space_id,
                j.locked_by,
                _when(j.available_utc),
                _when(j.updated_utc),
                _short(j.last_error),
            )
            for j in jobs
        ],
    )


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option("--status", help="Only these statuses.")] = None,
    job_type: Annotated[list[str] | None, typer.Option("--type", help="Only these job types.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Jobs, newest first."""
    from holocron.jobs.queue import JobQueue

    with open_holocron(ctx) as holo:
        jobs = JobQueue(holo.db).list(statuses=_statuses(status), types=_types(job_type), limit=limit, offset=offset)
    if as_json:
        print_json([job.to_json() for job in jobs])
        return
    _jobs_table("jobs", jobs)


@jobs_app.command()
def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One job in full, with every run it had."""
    from holocron.jobs.queue import JobQueue
    from holocron.store.runs import list_runs

    with open_holocron(ctx) as holo:
        job = JobQueue(holo.db).get(job_id)
        if job is None:
            raise UserError(f"no job {job_id}")
        with holo.db.read() as tx:
            runs = list_runs(tx, job_id=job_id, limit=1000)
    if as_json:
        print_json({**job.to_json(), "runs": runs})
        return
    data = job.to_json()
    rows = [
        (key, json.dumps(value, default=str) if isinstance(value, dict | list) else value)
        for key, value in data.items()
    ]
    print_table(f"job {job_id}", ["field", "value"], rows)
    if runs:
        _runs_table(f"runs of job {job_id}", runs)


@jobs_app.command()
def stats(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Jobs per type and status, what is ready now, and the queue's lag."""
    from holocron.jobs.models import JobStatus
    from holocron.jobs.queue import JobQueue

    with open_holocron(ctx) as holo:
        result = JobQueue(holo.db).stats()
    if as_json:
        print_json(result.to_json())
        return
    statuses = [s.value for s in JobStatus]
    rows: list[list[Any]] = [
        [job_type, *(result.counts.get(job_type, {}).get(s, 0) for s in statuses)] for job_type in sorted(result.counts)
    ]
    totals = result.totals()
    rows.append(["total", *(totals[s] for s in statuses)])
    print_table("jobs", ["type", *statuses], rows)
    lag = f"{result.oldest_ready_seconds:.1f} s" if result.oldest_ready_seconds is not None else "-"
    console.print(
        f"ready now: {result.ready} (oldest waiting {lag}); expired leases: {result.expired_leases}; "
        f"succeeded in the last hour: {result.completed_last_hour}"
    )


@jobs_app.command()
def retry(
    ctx: typer.Context,
    job_ids: Annotated[list[int] | None, typer.Argument(help="Jobs to retry (DEADLETTER, FAILED, CANCELLED).")] = None,
    all_deadletter: Annotated[bool, typer.Option("--all-deadletter", help="Retry every dead-lettered job.")] = False,
    job_type: Annotated[str | None, typer.Option("--type", help="With --all-deadletter: only this type.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Put jobs back in the queue with fresh attempts."""
    from holocron.jobs.queue import JobQueue

    if not job_ids and not all_deadletter:
        raise UserError("name job ids, or pass --all-deadletter")
    kinds = _types([job_type] if job_type else None)
    with open_holocron(ctx) as holo:
        done = JobQueue(holo.db).retry(
            job_ids or [], all_deadletter=all_deadletter, job_type=kinds[0] if kinds else None
        )
    if as_json:
        print_json({"retried": done})
        return
    missing = sorted(set(job_ids or []) - set(done))
    console.print(f"retried {len(done)} jobs" + (f": {', '.join(map(str, done))}" if done else ""))
    if missing:
        err_console.print(f"[yellow]not retried[/yellow] (unknown, or not DEADLETTER/FAILED/CANCELLED): {missing}")


@jobs_app.command()
def cancel(
    ctx: typer.Context,
    job_ids: Annotated[list[int], typer.Argument(help="Jobs to cancel.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cancel jobs; a running one stops at its worker's next heartbeat."""
    from holocron.jobs.queue import JobQueue

    with open_holocron(ctx) as holo:
        done = JobQueue(holo.db).cancel(job_ids)
    if as_json:
        print_json({"cancelled": done})
        return
    console.print(f"cancelled {len(done)} jobs" + (f": {', '.join(map(str, done))}" if done else ""))
    missing = sorted(set(job_ids) - set(done))
    if missing:
        err_console.print(f"[yellow]not cancelled[/yellow] (unknown, or already finished): {missing}")


@jobs_app.command()
def enqueue(
    ctx: typer.Context,
    job_type: Annotated[
        str, typer.Argument(help="CHUNK_SOURCE, EMBED_CHUNKS, REEMBED_SPACE, RETRIEVE_TEST or DRIFT_TEST.")
    ],
    payload: Annotated[str | None, typer.Option(help="The payload as JSON.")] = None,
    payload_file: Annotated[Path | None, typer.Option(help="The payload in a JSON file.")] = None,
    query: Annotated[list[str] | None, typer.Option("--query", help="A query (repeatable): RETRIEVE/DRIFT.")] = None,
    queries_file: Annotated[Path | None, typer.Option(help="Queries, one per line: RETRIEVE/DRIFT.")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    dedupe_key: Annotated[str | None, typer.Option(help="Enqueue once per key while unfinished.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before DEADLETTER.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Queue one job. The space field, when left out, is the configured model's space.

    Example: holocron jobs enqueue DRIFT_TEST --queries-file queries.txt
    """
    from holocron.jobs.models import PAYLOADS, InvalidPayloadError, UnknownJobTypeError, parse_job_type
    from holocron.jobs.queue import JobQueue

    try:
        kind = parse_job_type(job_type)
    except UnknownJobTypeError as exc:
        raise UserError(str(exc)) from exc
    data: dict[str, Any] = {}
    try:
        if payload_file is not None:
            data.update(json.loads(payload_file.read_text(encoding="utf-8")))
        if payload is not None:
            data.update(json.loads(payload))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"payload: {exc}") from exc
    queries = list(query or [])
    if queries_file is not None:
        if not queries_file.is_file():
            raise UserError(f"{queries_file}: no such file")
        queries += [line.strip() for line in queries_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if queries:
        data["queries"] = queries
    with open_holocron(ctx) as holo:
        space_field = PAYLOADS[kind].space_field
        if space_field not in data:
            data[space_field] = holo.space.embedding_space_id
        try:
            result = JobQueue(holo.db).enqueue(
                kind, data, priority=priority, dedupe_key=dedupe_key, max_attempts=max_attempts
            )
        except InvalidPayloadError as exc:
            raise UserError(str(exc)) from exc
    if as_json:
        print_json({**result.job.to_json(), "created": result.created})
        return
    verb = "queued" if result.created else "already queued (dedupe key held)"
    console.print(f"{verb}: job [bold]{result.job.job_id}[/bold] {kind.value} ({result.job.status.value})")


@jobs_app.command("enqueue-pending")
def enqueue_pending(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Queue CHUNK_SOURCE for every source whose chunks are stale (safe to repeat: dedupe keys)."""
    with open_holocron(ctx) as holo:
        results = holo.enqueue_indexing()
    created = [r.job.job_id for r in results if r.created]
    existing = [r.job.job_id for r in results if not r.created]
    if as_json:
        print_json({"created": created, "existing": existing})
        return
    console.print(f"queued {len(created)} CHUNK_SOURCE jobs; {len(existing)} were already queued")


# --- runs ------------------------------------------------------------------------------------------------------


def _seconds(run: dict[str, Any]) -> str:
    started, completed = run.get("started_utc"), run.get("completed_utc")
    if isinstance(started, datetime) and isinstance(completed, datetime):
        return f"{(completed - started).total_seconds():.2f}"
    return ""


def _runs_table(title: str, runs: list[dict[str, Any]]) -> None:
    print_table(
        title,
        ["run", "type", "status", "job", "worker", "space", "started", "seconds", "error"],
        [
            (
                r["run_id"],
                r["run_type"],
                r["status"],
                r["job_id"],
                r["worker_id"],
                r["embedding_space_id"],
                _when(r["started_utc"]),
                _seconds(r),
                _short(r["error"], 50),
            )
            for r in runs
        ],
    )


@runs_app.command("list")
def list_runs_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    job: Annotated[int | None, typer.Option("--job", help="Only the runs of this job.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Runs, newest first."""
    from holocron.store.runs import list_runs

    with open_holocron(ctx) as holo, holo.db.read() as tx:
        runs = list_runs(tx, limit=limit, offset=offset, job_id=job)
    if as_json:
        print_json(runs)
        return
    _runs_table("runs", runs)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run: model, options, metrics, error and artifacts (with their sha256)."""
    from holocron.store.runs import get_run, run_artifacts

    with open_holocron(ctx) as holo, holo.db.read() as tx:
        run = get_run(tx, run_id)
        artifacts = run_artifacts(tx, run_id) if run else []
    if run is None:
        raise UserError(f"no run {run_id}")
    if as_json:
        print_json({**run, "artifacts": artifacts})
        return
    rows = [
        (key, json.dumps(value, default=str, sort_keys=True) if isinstance(value, dict | list) else value)
        for key, value in run.items()
        if key not in ("options_json", "metrics_json")
    ]
    print_table(f"run {run_id}", ["field", "value"], rows)
    for title, key in (("options", "options_json"), ("metrics", "metrics_json")):
        values = run.get(key) or {}
        if values:
            print_table(
                title,
                ["name", "value"],
                [
                    (k, json.dumps(v, default=str) if isinstance(v, dict | list) else v)
                    for k, v in sorted(values.items())
                ],
            )
    if artifacts:
        print_table(
            "artifacts",
            ["type", "bytes", "sha256", "uri"],
            [(a["artifact_type"], a["byte_count"], a["content_sha256"], a["uri"]) for a in artifacts],
        )
