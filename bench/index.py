"""Indexing throughput: `holocron index` end to end against the bare model, the unchanged rerun, and memory.

Run by hand (it loads the real model and takes a few minutes):

    .venv/bin/python bench/index.py                 # sample corpus + first 1,000 SciFact abstracts + memory
    .venv/bin/python bench/index.py --skip-memory   # without the 10x memory comparison

For each corpus it prints: chunks; chunks per second of `index` end to end; seconds inside the model's encode
calls and seconds outside them (parsing, extraction, chunking, hashing, SQLite writes); the bare `encode` of the
same chunk texts in the same process and the ratio of the two; the unchanged rerun's time and model calls.
The memory part indexes N and 10xN abstracts in fresh processes and compares peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "corpus"
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def scifact_manifest(path: Path, limit: int, out: Path) -> Path:
    sources = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(sources) >= limit:
                break
            doc = json.loads(line)
            sources.append(
                {
                    "source_id": f"scifact-{doc['_id']}",
                    "source_type": "text",
                    "content": f"{doc['title']} {doc['text']}",
                    "tags": ["scifact"],
                }
            )
    out.write_text(json.dumps({"version": 1, "sources": sources}))
    return out


def measure(
    name: str, provider: object, *, folder: Path | None = None, manifest: Path | None = None
) -> dict[str, float]:
    from sqlalchemy import select

    from holocron.config import Settings
    from holocron.service import Holocron

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), embed_batch_size=64)
        with Holocron(settings, provider=provider) as holo:  # type: ignore[arg-type]
            _ = holo.space  # resolve the space before timing (a cached lookup, as in any later command)
            stats = holo.provider.stats
            model_before, calls_before = stats.seconds, stats.calls
            started = time.perf_counter()
            if folder is not None:
                holo.ingest([folder])
            report = holo.index(manifest=manifest)
            total = time.perf_counter() - started
            model = stats.seconds - model_before
            with holo.db.read() as tx:
                texts = [
                    row[0] for row in tx.execute(select(holo.db.t.chunk.c.content).order_by(holo.db.t.chunk.c.chunk_id))
                ]
            bare_started = time.perf_counter()
            holo.provider.model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)  # type: ignore[attr-defined]
            bare = time.perf_counter() - bare_started
            calls_before = stats.calls
            rerun_started = time.perf_counter()
            if folder is not None:
                holo.ingest([folder])
            holo.index(manifest=manifest)
            rerun = time.perf_counter() - rerun_started
            rerun_calls = stats.calls - calls_before
    return {
        "corpus": name,
        "sources": report.chunking.sources_chunked + report.chunking.sources_failed,
        "chunks": len(texts),
        "total_s": total,
        "chunks_per_s": len(texts) / total,
        "model_s": model,
        "outside_s": total - model,
        "bare_s": bare,
        "ratio": total / bare,
        "rerun_s": rerun,
        "rerun_calls": rerun_calls,
    }


def memory_child(limit: int) -> None:
    from holocron.config import Settings
    from holocron.service import Holocron

    with tempfile.TemporaryDirectory() as home:
        manifest = scifact_manifest(SCIFACT, limit, Path(home) / "m.json")
        with Holocron(Settings(home=Path(home) / "h")) as holo:
            holo.index(manifest=manifest)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def disable_observability() -> None:
    """Swap the indexing path's metric and log-context calls for no-ops (the 'off' side of the comparison)."""
    import contextlib

    import holocron.indexer as indexer
    import holocron.service as service

    indexer.provider_call = lambda *a, **k: contextlib.nullcontext()  # type: ignore[assignment]
    indexer.record_chunks_written = lambda n: n  # type: ignore[assignment]
    indexer.record_embeddings_written = lambda n, space: n  # type: ignore[assignment]
    service.log_context = lambda **k: contextlib.nullcontext()  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--abstracts", type=int, default=1000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-base", type=int, default=400, help="sources in the small memory run (x10 in the big)")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--observability",
        choices=["on", "off"],
        default="on",
        help="off: metric updates and log context become no-ops, to measure what they cost",
    )
    args = parser.parse_args()
    if args.observability == "off":
        disable_observability()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    from holocron.embedding.local import LocalProvider

    provider = LocalProvider()
    provider.identity()
    provider.embed(["warm up the model"] * 8)  # load and warm before any timing
    rows = [measure("sample corpus", provider, folder=SAMPLE)]
    if SCIFACT.exists():
        with tempfile.TemporaryDirectory() as tmp:
            manifest = scifact_manifest(SCIFACT, args.abstracts, Path(tmp) / "manifest.json")
            rows.append(measure(f"SciFact first {args.abstracts}", provider, manifest=manifest))
    else:
        print(f"(SciFact not found at {SCIFACT}: skipped)")

    header = (
        f"{'corpus':24} {'sources':>7} {'chunks':>7} {'index s':>8} {'chunks/s':>9} {'model s':>8} "
        f"{'outside s':>9} {'bare s':>7} {'ratio':>6} {'rerun s':>8} {'rerun calls':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['corpus']:24} {r['sources']:>7} {r['chunks']:>7} {r['total_s']:>8.2f} {r['chunks_per_s']:>9.1f} "
            f"{r['model_s']:>8.2f} {r['outside_s']:>9.3f} {r['bare_s']:>7.2f} {r['ratio']:>6.2f} "
            f"{r['rerun_s']:>8.3f} {r['rerun_calls']:>11}"
        )
    for r in rows:
        if r["corpus"].startswith("SciFact"):
            per_1000 = 1000 / r["sources"]
            print(
                f"\nper 1,000 abstracts: outside the model {r['outside_s'] * per_1000:.3f} s (target <= 1.0; "
                f"LangChain in-memory 0.74, LlamaIndex 1.8); unchanged rerun {r['rerun_s'] * per_1000:.3f} s with "
                f"{r['rerun_calls']} model calls (target < 0.5 s, 0 calls; LangChain 1.4 s and 11 chunks)"
            )

    if not args.skip_memory and SCIFACT.exists():
        peaks = {}
        for n in (args.memory_base, args.memory_base * 10):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(n)], check=True, capture_output=True, text=True
            )
            peaks[n] = int(out.stdout.strip().splitlines()[-1]) / 1024
        small, big = peaks[args.memory_base], peaks[args.memory_base * 10]
        print(
            f"\npeak RSS: {args.memory_base} sources {small:.0f} MiB, {args.memory_base * 10} sources {big:.0f} MiB "
            f"(+{(big / small - 1) * 100:.1f}%; target < 20%)"
        )


if __name__ == "__main__":
    main()
