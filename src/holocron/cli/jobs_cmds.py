"""``holocron worker``, ``holocron jobs ...`` and ``holocron runs ...``: the queue from the command line."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from holocron.cli.common import (
    HolocronTyper,
    UserError,
    console,
    err_console,
    one_of,
    open_holocron,
    positive_number,
    print_json,
    print_table,
    split_choices,
    whole_number,
)
from holocron.cli.options import (
    JOB_TYPE_LIST,
    JobStatusesOption,
    JobTypesOption,
    JsonOption,
    LimitOption,
    OffsetOption,
)
from holocron.vocabulary import JOB_TYPES

QUEUES = ("vector", "llm")

if TYPE_CHECKING:
    from holocron.jobs.models import Job, JobStatus, JobType

jobs_app = HolocronTyper(help="The job queue: list, inspect, retry, cancel, enqueue.", no_args_is_help=True)
runs_app = HolocronTyper(help="Runs and their metrics and artifacts.", no_args_is_help=True)


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
        str | None,
        typer.Option(metavar="NAME", help="Name in locked_by and in run rows (default: host:pid:random)."),
    ] = None,
    poll_seconds: Annotated[
        float | None,
        typer.Option(
            envvar="HOLOCRON_WORKER_POLL_SECONDS",
            parser=positive_number,
            metavar="SECONDS",
            help="Longest sleep while the queue is empty (default: 1).",
        ),
    ] = None,
    lease_seconds: Annotated[
        float | None,
        typer.Option(
            envvar="HOLOCRON_LEASE_SECONDS",
            parser=positive_number,
            metavar="SECONDS",
            help="Lease per claim; heartbeats renew it every third of it (default: lease_seconds, 20).",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(parser=whole_number(1), metavar="N", help="Jobs run at once, as threads sharing one model."),
    ] = 1,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--types",
            parser=one_of(JOB_TYPES, several=True),
            metavar="TYPE",
            help=f"Only these job types (repeat or comma-separate): {JOB_TYPE_LIST}.",
        ),
    ] = None,
    max_jobs: Annotated[
        int | None, typer.Option(parser=whole_number(1), metavar="N", help="Exit after this many jobs.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            parser=whole_number(0, 65535),
            metavar="PORT",
            help="Serve Prometheus metrics on 127.0.0.1:PORT while working.",
        ),
    ] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            parser=one_of(QUEUES, several=True),
            metavar="QUEUE",
            help="The queues to serve, in the order tried: vector, llm (default: both).",
        ),
    ] = None,
    interrogations: Annotated[
        list[str] | None,
        typer.Option("--interrogations", metavar="KEY", help="Only these interrogations (llm queue)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Claim and run jobs of the vector queue and the LLM queue.

    Ctrl-C or SIGTERM stops it gracefully: it finishes or releases its current job.
    """
    served = split_choices(queues) or list(QUEUES)
    if once and loop:
        raise UserError("--once and --loop exclude each other")
    from holocron.jobs.worker import Lane, VectorLane, Worker, WorkerOptions, default_worker_id

    job_types = _types(types)
    keys = split_choices(interrogations) or None
    with open_holocron(ctx) as holo:
        if list_types:
            _list_types(holo, as_json)
            return
        settings = holo.settings
        if keys is not None:
            _known_interrogations(holo, keys)
        if metrics_port is not None:
            from holocron.observability.metrics import start_metrics_server

            start_metrics_server(metrics_port, holo.db)
        space_ids = [holo.space.embedding_space_id] if "vector" in served else []
        if dry_run:
            _dry_run(holo, served, job_types, space_ids, keys, as_json)
            return
        lanes: list[Lane] = []
        for queue in served:
            if queue == "vector":
                lanes.append(VectorLane(holo.jobs, job_types, space_ids))
            else:
                lanes.append(holo.llm_lane(keys))
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
        what = [
            f"[cyan]{holo.space.name}[/cyan]" if q == "vector" else f"llm ({settings.chat_provider})" for q in served
        ]
        err_console.print(
            f"worker [bold]{options.worker_id}[/bold] serving {' and '.join(what)}"
            f" ({'until the queues are empty' if once else 'until stopped'})"
        )
        report = Worker(holo, options, lanes=lanes).run()
    if as_json:
        # The report's own to_json deep-copies its lock (dataclasses.asdict) and fails: read the fields.
        print_json({f.name: getattr(report, f.name) for f in fields(report) if not f.name.startswith("_")})
        return
    console.print(
        f"worker {report.worker_id}: {report.claimed} claimed, {report.succeeded} succeeded, "
        f"{report.failed} failed (will retry), {report.deadlettered} dead-lettered, {report.released} released, "
        f"{report.lost} lost leases in {report.seconds:.1f} s"
        + (f"; stopped: {report.stop_reason}" if report.stop_reason else "")
    )


def _known_interrogations(holo: Any, keys: list[str]) -> None:
    from holocron.llm.interrogations import InterrogationError

    try:
        for key in keys:
            holo.interrogations.get(key)
    except InterrogationError as exc:
        raise UserError(str(exc)) from exc


def _list_types(holo: Any, as_json: bool) -> None:
    """The vector job types and the interrogations: what each queue's workers can run."""
    from holocron.jobs.handlers import default_registry

    registry = default_registry()
    rows: list[dict[str, Any]] = [
        {
            "queue": "vector",
            "job_type": spec.job_type.value,
            "description": spec.description,
            "priority": spec.payload_model.default_priority,
            "max_attempts": spec.payload_model.default_max_attempts,
            "fields": sorted(spec.payload_model.model_fields),
        }
        for spec in (registry.spec(t) for t in registry.types())
    ]
    for interrogation in holo.interrogations.all():
        rows.append(
            {
                "queue": "llm",
                "job_type": interrogation.key,
                "version": interrogation.version,
                "description": interrogation.description,
                "enabled": interrogation.enabled,
                "origin": interrogation.origin,
                "fields": sorted(interrogation.params),
            }
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        "job types",
        ["queue", "type", "description", "parameters / payload fields"],
        [(r["queue"], r["job_type"], r["description"], ", ".join(r["fields"])) for r in rows],
        wrap=("description", "parameters / payload fields"),
    )


def _dry_run(
    holo: Any,
    served: list[str],
    job_types: list[JobType] | None,
    space_ids: list[int],
    keys: list[str] | None,
    as_json: bool,
) -> None:
    upcoming: dict[str, list[Any]] = {}
    if "vector" in served:
        upcoming["vector"] = holo.jobs.peek(types=job_types, spaces=space_ids, limit=20)
    if "llm" in served:
        upcoming["llm"] = holo.llm_jobs.peek(types=keys, limit=20)
    if as_json:
        print_json([{"queue": queue, **job.to_json()} for queue, jobs in upcoming.items() for job in jobs])
        return
    if "vector" in upcoming:
        if upcoming["vector"]:
            _jobs_table(f"next jobs for space {holo.space.name} (dry run: none taken)", upcoming["vector"])
        else:
            console.print(f"nothing ready for space {holo.space.name}")
    if "llm" in upcoming:
        from holocron.cli.llm_cmds import llm_jobs_table

        if upcoming["llm"]:
            llm_jobs_table("next llm jobs (dry run: none taken)", upcoming["llm"])
        else:
            console.print("no llm job ready")


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
        wrap=("last error",),
    )


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: JobStatusesOption = None,
    job_type: JobTypesOption = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Jobs, newest first."""
    with open_holocron(ctx) as holo:
        jobs = holo.jobs.list(statuses=_statuses(status), types=_types(job_type), limit=limit, offset=offset)
    if as_json:
        print_json([job.to_json() for job in jobs])
        return
    _jobs_table("jobs", jobs)


@jobs_app.command()
def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(parser=whole_number(1), metavar="JOB_ID", help="The job's id.")],
    as_json: JsonOption = False,
) -> None:
    """One job in full, with every run it had."""
    from holocron.api.models import RunOut

    with open_holocron(ctx) as holo:
        job = holo.jobs.get(job_id)
        if job is None:
            raise UserError(f"no job {job_id}")
        runs = holo.runs(job_id=job_id, limit=1000).items
    if as_json:
        print_json({**job.to_json(), "runs": [RunOut.from_row(run).model_dump(mode="json") for run in runs]})
        return
    data = job.to_json()
    rows = [
        (key, json.dumps(value, default=str) if isinstance(value, dict | list) else value)
        for key, value in data.items()
    ]
    print_table(f"job {job_id}", ["field", "value"], rows, wrap=("value",))
    if runs:
        _runs_table(f"runs of job {job_id}", runs)


@jobs_app.command()
def stats(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Jobs per type and status, and the queue's lag.

    The JSON has the field names of the queue in /api/status: by_status, by_type, total, available and
    oldest_available_age_s.
    """
    from holocron.jobs.models import JobStatus

    with open_holocron(ctx) as holo:
        result = holo.jobs.stats()
    if as_json:
        statuses = [s.value for s in JobStatus]
        by_status = result.totals()
        print_json(
            {
                "by_status": by_status,
                "by_type": {
                    job_type: {s: result.counts[job_type].get(s, 0) for s in statuses}
                    for job_type in JOB_TYPES
                    if job_type in result.counts
                },
                "total": sum(by_status.values()),
                "available": result.ready,
                "oldest_available_age_s": (
                    None if result.oldest_ready_seconds is None else round(result.oldest_ready_seconds, 1)
                ),
                "expired_leases": result.expired_leases,
                "succeeded_last_hour": result.completed_last_hour,
            }
        )
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
    job_ids: Annotated[
        list[int] | None,
        typer.Argument(
            parser=whole_number(1), metavar="JOB_ID", help="Jobs to retry (each DEADLETTER, FAILED or CANCELLED)."
        ),
    ] = None,
    all_deadletter: Annotated[bool, typer.Option("--all-deadletter", help="Retry every dead-lettered job.")] = False,
    job_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            parser=one_of(JOB_TYPES),
            metavar="TYPE",
            help=f"With --all-deadletter: only this job type ({JOB_TYPE_LIST}).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Put jobs back in the queue with fresh attempts.

    Exits 1 when a named job does not exist or is in another state; the others are retried.
    """
    if not job_ids and not all_deadletter:
        raise UserError("name job ids, or pass --all-deadletter")
    kinds = _types([job_type] if job_type else None)
    with open_holocron(ctx) as holo:
        queue = holo.jobs
        done = queue.retry(job_ids or [], all_deadletter=all_deadletter, job_type=kinds[0] if kinds else None)
        skipped = _skipped(queue, job_ids or [], done, "DEADLETTER, FAILED or CANCELLED")
    _report_changes("retried", done, skipped, as_json)


@jobs_app.command()
def cancel(
    ctx: typer.Context,
    job_ids: Annotated[
        list[int], typer.Argument(parser=whole_number(1), metavar="JOB_ID", help="Jobs to cancel (unfinished ones).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Cancel unfinished jobs.

    A running job stops at its worker's next heartbeat. Exits 1 when a named job does not exist or has
    finished; the others are cancelled.
    """
    with open_holocron(ctx) as holo:
        queue = holo.jobs
        done = queue.cancel(job_ids)
        skipped = _skipped(queue, job_ids, done, "NEW, RUNNING or FAILED")
    _report_changes("cancelled", done, skipped, as_json)


def _skipped(queue: Any, asked: list[int], done: list[int], allowed: str) -> list[dict[str, Any]]:
    """Why each asked-for job was left alone: it does not exist, or it is in a state the action does not take."""
    out: list[dict[str, Any]] = []
    for job_id in sorted(set(asked) - set(done)):
        job = queue.get(job_id)
        reason = "no such job" if job is None else f"it is {job.status.value}, not {allowed}"
        out.append({"job_id": job_id, "reason": reason})
    return out


def _report_changes(verb: str, done: list[int], skipped: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json({"job_ids": done, "skipped": skipped})
    else:
        console.print(f"{verb} {len(done)} jobs" + (f": {', '.join(map(str, done))}" if done else ""))
    if skipped:
        reasons = "; ".join(f"job {s['job_id']}: {s['reason']}" for s in skipped)
        raise UserError(f"not {verb}: {reasons}")


@jobs_app.command()
def enqueue(
    ctx: typer.Context,
    job_type: Annotated[
        str, typer.Argument(parser=one_of(JOB_TYPES), metavar="TYPE", help=f"The job type: {JOB_TYPE_LIST}.")
    ],
    payload: Annotated[
        str | None, typer.Option(metavar="JSON", help="The payload as a JSON object (see worker --list-types).")
    ] = None,
    payload_file: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The payload in a JSON file (--payload wins per field).")
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option("--query", metavar="TEXT", help="A query (repeatable), for RETRIEVE_TEST and DRIFT_TEST."),
    ] = None,
    queries_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Queries, one per line, for RETRIEVE_TEST and DRIFT_TEST."),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(parser=whole_number(-1000, 1000), metavar="N", help="Higher runs first (-1000 to 1000)."),
    ] = None,
    dedupe_key: Annotated[
        str | None, typer.Option(metavar="KEY", help="Enqueue once per key while the job is unfinished.")
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(parser=whole_number(1, 100), metavar="N", help="Attempts before DEADLETTER (1 to 100)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue one job.

    The payload's space field, when left out, is the configured model's space; a CHUNK_SOURCE payload's
    chunk_policy, the configured policy.

    \b
    Example: holocron jobs enqueue DRIFT_TEST --queries-file queries.txt
    """
    from holocron.jobs.models import InvalidPayloadError, UnknownJobTypeError, parse_job_type

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
        try:
            result = holo.enqueue_job(kind, data, priority=priority, dedupe_key=dedupe_key, max_attempts=max_attempts)
        except InvalidPayloadError as exc:
            raise UserError(str(exc)) from exc
    if as_json:
        print_json({"job": result.job.to_json(), "created": result.created})
        return
    verb = "queued" if result.created else "already queued (dedupe key held)"
    console.print(f"{verb}: job [bold]{result.job.job_id}[/bold] {kind.value} ({result.job.status.value})")


@jobs_app.command("enqueue-pending")
def enqueue_pending(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Queue CHUNK_SOURCE jobs for every stale source.

    Safe to repeat: a source already queued keeps its job (dedupe keys).
    """
    with open_holocron(ctx) as holo:
        results = holo.enqueue_indexing()
    created = [r.job.job_id for r in results if r.created]
    existing = [r.job.job_id for r in results if not r.created]
    if as_json:
        print_json({"job_ids": created, "existing_job_ids": existing})
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
        wrap=("error",),
    )


@runs_app.command("list")
def list_runs_cmd(
    ctx: typer.Context,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    job: Annotated[
        int | None, typer.Option("--job", parser=whole_number(1), metavar="JOB_ID", help="Only the runs of this job.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first."""
    from holocron.api.models import RunOut

    with open_holocron(ctx) as holo:
        runs = holo.runs(job_id=job, limit=limit, offset=offset).items
    if as_json:
        print_json([RunOut.from_row(run).model_dump(mode="json") for run in runs])
        return
    _runs_table("runs", runs)


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    as_json: JsonOption = False,
) -> None:
    """One run: model, options, metrics, error and artifacts (with their sha256)."""
    from holocron.api.models import RunOut

    with open_holocron(ctx) as holo:
        run = holo.run(run_id)
    if run is None:
        raise UserError(f"no run {run_id}")
    artifacts: list[dict[str, Any]] = run.get("artifacts") or []
    if as_json:
        print_json(RunOut.from_row(run, artifacts).model_dump(mode="json"))
        return
    data = RunOut.from_row(run).model_dump(mode="json", exclude={"artifacts"})
    rows = [(key, value) for key, value in data.items() if key not in ("options", "metrics")]
    print_table(f"run {run_id}", ["field", "value"], rows, wrap=("value",))
    for title in ("options", "metrics"):
        values = data[title]
        if values:
            print_table(
                title,
                ["name", "value"],
                [
                    (k, json.dumps(v, default=str) if isinstance(v, dict | list) else v)
                    for k, v in sorted(values.items())
                ],
                wrap=("value",),
            )
    if artifacts:
        print_table(
            "artifacts",
            ["type", "bytes", "sha256", "uri"],
            [(a["artifact_type"], a["byte_count"], a["content_sha256"], a["uri"]) for a in artifacts],
            wrap=("uri",),
        )
