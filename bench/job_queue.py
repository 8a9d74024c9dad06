"""Queue throughput and the cost of indexing through the queue instead of in one process.

Run by hand (the second part loads the real model and takes a few minutes):

    .venv/bin/python bench/job_queue.py                  # both parts
    .venv/bin/python bench/job_queue.py --skip-e2e       # only the no-op throughput
    .venv/bin/python bench/job_queue.py --jobs 4000 --repeats 5

Part 1, no-op jobs: N jobs are queued in a fresh SQLite file, then 1, 2 and 4 worker processes (each a full
`Worker`: claim, a `vector.run` row, complete, with heartbeats running) drain it with a handler that does
nothing. The processes import and connect first and start together, so the rate counts queue work only.
Target: at least 200 jobs/s with one worker.

Part 2, end to end on the sample corpus (`examples/corpus`), same chunks and same model: `ingest` + `index`
in one process against `ingest --enqueue` + a worker draining the queue (one CHUNK_SOURCE job, then
EMBED_CHUNKS jobs of `embed_batch_size` chunks), each in a fresh home, alternated and repeated. Both paths
share one warmed model in this process, so the difference is the queue's own cost. Printed: the best and median
totals, and the time spent outside the model; since both paths make the same model calls on the same batches,
the ratio with equal model time is the queue's cost relative to the whole run (on a shared machine the model's
time alone swings by tens of percent between identical runs). Then once more
as a user runs it, in fresh processes: `holocron ingest --no-enqueue` + `holocron index` against `holocron
ingest` + `holocron worker --once`. Target: the queue path within 1.05x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from noop_workers import seed_noop_jobs, start_noop_workers  # a sibling script module

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "corpus"
HOLOCRON = [str(Path(sys.executable).parent / "holocron")]


# --- part 1: no-op throughput ----------------------------------------------------------------------------------


def noop_throughput(processes: int, jobs: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from holocron.store.database import Database

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/queue.db"
        db = Database(url)
        db.upgrade()
        seed_noop_jobs(db, jobs)
        go = Path(tmp) / "go"
        children = start_noop_workers(url, tmp, processes, go)
        started = time.perf_counter()
        go.touch()
        done = 0
        for child in children:
            out, _ = child.communicate(timeout=600)
            done += int(out.strip().split()[-1])
        wall = time.perf_counter() - started
        with db.read() as tx:
            j = tx.t.job
            first, last, succeeded = tx.execute(
                select(func.min(j.c.locked_utc), func.max(j.c.completed_utc), func.count()).where(
                    j.c.status == "SUCCEEDED"
                )
            ).one()
            runs = tx.execute(select(func.count()).select_from(tx.t.run)).scalar_one()
        db.dispose()
    span = (_dt(last) - _dt(first)).total_seconds()
    if succeeded != jobs or done != jobs or runs != jobs:
        raise RuntimeError(f"expected {jobs} jobs and runs, got {succeeded} succeeded, {done} reported, {runs} runs")
    return {"processes": processes, "jobs": jobs, "wall_s": wall, "per_s": jobs / wall, "span_per_s": jobs / span}


def _dt(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


# --- part 2: end to end ----------------------------------------------------------------------------------------


def _chunks_and_embeddings(holo: Any) -> tuple[list[str], int]:
    from sqlalchemy import func, select

    with holo.db.read() as tx:
        chunk_ids = sorted(tx.execute(select(tx.t.chunk.c.chunk_id)).scalars())
        embeddings = int(tx.execute(select(func.count()).select_from(tx.t.embedding)).scalar_one())
    return chunk_ids, embeddings


def e2e_in_process(provider: Any, path: str, batch: int) -> dict[str, Any]:
    from holocron.config import Settings
    from holocron.jobs import Worker, WorkerOptions
    from holocron.service import Holocron

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), embed_batch_size=batch)  # type: ignore[call-arg]
        with Holocron(settings, provider=provider) as holo:
            _ = holo.space  # resolved before timing, as in bench/index.py
            calls, model_before = provider.stats.calls, provider.stats.seconds
            started = time.perf_counter()
            if path == "index":
                holo.ingest([SAMPLE])
                holo.index()
            else:
                holo.ingest([SAMPLE], enqueue=True)
                report = Worker(holo, WorkerOptions(worker_id="bench", drain=True, handle_signals=False)).run()
                if report.succeeded != report.claimed:
                    raise RuntimeError(f"queue path: {report}")
            seconds = time.perf_counter() - started
            chunk_ids, embeddings = _chunks_and_embeddings(holo)
    return {
        "seconds": seconds,
        "outside_s": seconds - (provider.stats.seconds - model_before),
        "chunks": chunk_ids,
        "embeddings": embeddings,
        "calls": provider.stats.calls - calls,
    }


def _cli(home: str, *args: str) -> None:
    subprocess.run([*HOLOCRON, "--home", home, *args], check=True, capture_output=True, text=True)


def e2e_cli(path: str, batch: int) -> dict[str, Any]:
    from holocron.config import Settings
    from holocron.service import Holocron

    env_batch = os.environ.get("HOLOCRON_EMBED_BATCH_SIZE")
    os.environ["HOLOCRON_EMBED_BATCH_SIZE"] = str(batch)
    try:
        with tempfile.TemporaryDirectory() as home:
            started = time.perf_counter()
            if path == "index":
                _cli(home, "ingest", "--no-enqueue", str(SAMPLE))
                _cli(home, "index")
            else:
                _cli(home, "ingest", str(SAMPLE))
                _cli(home, "worker", "--once")
            seconds = time.perf_counter() - started
            with Holocron(Settings(home=Path(home))) as holo:  # type: ignore[call-arg]
                chunk_ids, embeddings = _chunks_and_embeddings(holo)
    finally:
        if env_batch is None:
            os.environ.pop("HOLOCRON_EMBED_BATCH_SIZE", None)
        else:
            os.environ["HOLOCRON_EMBED_BATCH_SIZE"] = env_batch
    return {"seconds": seconds, "chunks": chunk_ids, "embeddings": embeddings}


def main() -> None:
    # This file is named like the standard library's `queue`, which torch imports: run as a script, its own
    # folder comes first on sys.path and would shadow it. Everything else is imported lazily, after this.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs per throughput run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=4, help="in-process end-to-end runs per path")
    parser.add_argument("--batch", type=int, default=64, help="embed_batch_size for both paths")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-cli", action="store_true", help="skip the fresh-process end-to-end comparison")
    parser.add_argument("--cli-repeats", type=int, default=2, help="fresh-process runs per path (alternated)")
    args = parser.parse_args()

    import sqlite3

    print(f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print("no-op jobs on SQLite (claim + run row + complete per job)")
    header = f"{'workers':>7} {'jobs':>6} {'wall s':>7} {'jobs/s':>8} {'first claim to last completion, jobs/s':>40}"
    print(header)
    print("-" * len(header))
    rates = {}
    for n in args.workers:
        r = noop_throughput(n, args.jobs)
        rates[n] = r["per_s"]
        print(f"{n:>7} {r['jobs']:>6} {r['wall_s']:>7.2f} {r['per_s']:>8.1f} {r['span_per_s']:>40.1f}")
    if 1 in rates:
        verdict = "met" if rates[1] >= 200 else "MISSED"
        print(f"target >= 200 jobs/s with one worker: {rates[1]:.0f} ({verdict})")
    if args.skip_e2e:
        return

    from holocron.embedding.local import LocalProvider

    provider = LocalProvider(batch_size=args.batch)
    provider.identity()
    provider.embed(["warm up the model"] * 8)
    runs: dict[str, list[dict[str, Any]]] = {"index": [], "queue": []}
    for i in range(args.repeats):
        for path in ("index", "queue") if i % 2 == 0 else ("queue", "index"):  # alternate the order
            runs[path].append(e2e_in_process(provider, path, args.batch))
    index_runs, queue_runs = runs["index"], runs["queue"]
    same_chunks = all(r["chunks"] == index_runs[0]["chunks"] for r in index_runs + queue_runs)
    same_embeddings = {r["embeddings"] for r in index_runs + queue_runs} == {len(index_runs[0]["chunks"])}
    print(
        f"\nend to end, sample corpus ({len(index_runs[0]['chunks'])} chunks, batch {args.batch}), one process, "
        f"{args.repeats} runs each, alternated"
    )
    header = f"{'path':42} {'best s':>7} {'median s':>8} {'outside model s':>15} {'model calls':>11}  all runs, s"
    print(header)
    print("-" * len(header))
    best: dict[str, float] = {}
    outside: dict[str, float] = {}
    for path, label in (
        ("index", "ingest + index (single process)"),
        ("queue", "ingest --enqueue + worker --once (queue)"),
    ):
        rows = runs[path]
        best[path] = min(r["seconds"] for r in rows)
        outside[path] = statistics.median(r["outside_s"] for r in rows)
        median = statistics.median(r["seconds"] for r in rows)
        each = ", ".join(f"{r['seconds']:.2f}" for r in rows)
        print(f"{label:42} {best[path]:>7.2f} {median:>8.2f} {outside[path]:>15.3f} {rows[0]['calls']:>11}  {each}")
    medians = {path: statistics.median(r["seconds"] for r in rows) for path, rows in runs.items()}
    # Both paths make the same model calls on the same batches, so their model time differs only by noise;
    # taking it as equal leaves what the queue itself adds.
    queue_cost = outside["queue"] - outside["index"]
    normalized = (medians["index"] + queue_cost) / medians["index"]
    print(
        f"same chunks: {same_chunks}; one embedding per chunk: {same_embeddings}\n"
        f"queue / single-process: best runs {best['queue'] / best['index']:.3f}, medians "
        f"{medians['queue'] / medians['index']:.3f}; the queue's own cost (outside the model) {queue_cost:+.3f} s, "
        f"so with equal model time {normalized:.3f} (target <= 1.05: {'met' if normalized <= 1.05 else 'MISSED'})"
    )
    print(
        "(on a shared machine the model's time swings with other load from run to run; the time outside it, "
        "which is all the queue adds, does not)"
    )
    if args.skip_cli:
        return
    cli: dict[str, list[dict[str, Any]]] = {"index": [], "queue": []}
    for i in range(args.cli_repeats):
        for path in ("index", "queue") if i % 2 == 0 else ("queue", "index"):  # alternate the order
            cli[path].append(e2e_cli(path, args.batch))
    cli_index = min(r["seconds"] for r in cli["index"])
    cli_queue = min(r["seconds"] for r in cli["queue"])
    print(f"\nend to end as a user runs it, fresh processes (each loads the model), {args.cli_repeats} runs each")
    for label, rows, fastest in (
        ("holocron ingest --no-enqueue; holocron index", cli["index"], cli_index),
        ("holocron ingest; holocron worker --once", cli["queue"], cli_queue),
    ):
        each = ", ".join(f"{r['seconds']:.2f}" for r in rows)
        print(f"{label:44} best {fastest:>7.2f}  all runs, s: {each}")
    same = all(r["chunks"] == index_runs[0]["chunks"] for r in cli["index"] + cli["queue"])
    print(f"same chunks: {same}; queue / single-process, best runs = {cli_queue / cli_index:.3f}")


if __name__ == "__main__":
    main()
