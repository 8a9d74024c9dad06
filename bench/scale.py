"""Scale figures to plan with: generated corpora of growing size through Holocron, SQLite and PostgreSQL.

Run by hand (100,000 chunks take a few minutes per engine; 1,000,000 take the better part of an hour):

    .venv/bin/python bench/scale.py                                   # 10k and 100k chunks, SQLite only
    .venv/bin/python bench/scale.py --sizes 10000,100000,1000000 --pg-url postgresql+psycopg://...

The corpus is generated: one text source per chunk (about 700 characters of words drawn from the sample
corpus's vocabulary, Zipf-weighted, seeded), so every source is one chunk. **The embedding is a stand-in**:
hashed words into 384 dimensions (the real model's width, so rows and indexes have their real size), about
a thousand times faster than the model, so that the figures are Holocron's own costs. Each (engine, size)
runs in a fresh process, for its peak RSS.

Printed per run: ingest rate (sources registered), chunk rate, embedding write rate (the index run's embed
stage less the stand-in's own time), the vector index build or catch-up at the run's end (SQLite's HNSW, or
pgvector's, built once after a space's first load), hybrid search p50/p95 over 200 queries and the median of
each leg (vector and keyword, which run side by side), database and
index size per million chunks, peak RSS; then each figure's growth exponent between sizes (time ~ n^b: 1.0
is linear; search should be below 1).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY_FROM = ROOT / "examples" / "corpus"
DIMS = 384
PART = 50_000  # sources per manifest file
QUERIES = 200
WORDS_PER_SOURCE = 110


class StandInProvider:
    """Hashed bag of words, 384 wide: similar texts get similar vectors, at a fraction of the model's cost."""

    def __init__(self) -> None:
        from holocron.embedding.base import ProviderStats

        self.stats = ProviderStats()

    def identity(self) -> Any:
        from holocron.embedding.base import ModelIdentity

        return ModelIdentity("bench", "stand-in-hashed-words", "v1", "sha256:" + "5" * 64, DIMS, 256, True)

    def embed(self, texts: Sequence[str], purpose: Any = None) -> np.ndarray:
        started = time.perf_counter()
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        for row, text in enumerate(texts):
            columns = [zlib.crc32(word.encode()) % DIMS for word in text.lower().split()]
            np.add.at(out[row], columns, 1.0)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        self.stats.calls += 1
        self.stats.texts += len(texts)
        self.stats.seconds += time.perf_counter() - started
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [min(256, len(text.split()) + 2) for text in texts]

    def close(self) -> None:
        pass


def vocabulary() -> tuple[list[str], list[float]]:
    words: dict[str, int] = {}
    for path in sorted(VOCABULARY_FROM.rglob("*")):
        if path.is_file() and path.suffix in {".html", ".json", ".md", ".txt"}:
            for word in re.findall(r"[a-z]{3,14}", path.read_text(encoding="utf-8", errors="replace").lower()):
                words[word] = words.get(word, 0) + 1
    ranked = sorted(words, key=lambda w: (-words[w], w))[:20000]
    return ranked, [1.0 / (rank + 1) for rank in range(len(ranked))]


def write_corpus(size: int, folder: Path, seed: int = 7) -> tuple[list[Path], list[str]]:
    """Manifests of ``size`` text sources, and queries made of words from random sources."""
    words, weights = vocabulary()
    rng = random.Random(seed)
    manifests, queries = [], []
    query_every = max(1, size // QUERIES)
    for start in range(0, size, PART):
        sources = []
        for n in range(start, min(size, start + PART)):
            text = " ".join(rng.choices(words, weights, k=WORDS_PER_SOURCE))
            sources.append({"source_id": f"gen-{n:07d}", "source_type": "text", "content": text})
            if n % query_every == 0 and len(queries) < QUERIES:
                picked = text.split()
                queries.append(" ".join(rng.sample(picked, 4)))
        path = folder / f"part-{start // PART:03d}.json"
        path.write_text(json.dumps({"version": 1, "sources": sources}))
        manifests.append(path)
    return manifests, queries


def directory_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_one(engine: str, size: int, pg_url: str | None) -> dict[str, Any]:
    from holocron.config import Settings
    from holocron.service import Holocron

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifests, queries = write_corpus(size, work)
        database_url = None
        if engine == "postgres":
            assert pg_url
            database_url = fresh_pg_database(pg_url)
        settings = Settings(home=work / "home", database_url=database_url)
        provider = StandInProvider()
        with Holocron(settings, provider=provider) as holo:  # type: ignore[arg-type]
            started = time.perf_counter()
            for manifest in manifests:
                holo.ingest_manifest(manifest)
            ingest_s = time.perf_counter() - started
            report = holo.index()
            chunks = report.chunking.chunks_written
            embed_s = report.embedding.seconds - report.embedding.model_seconds
            index_s = report.vector_index.seconds if report.vector_index else 0.0
            holo.search(queries[0])  # the first search opens what the process has not opened yet
            times, legs = [], {"vector": [], "keyword": []}
            for query in queries:
                t0 = time.perf_counter()
                result = holo.search(query, k=10)
                times.append((time.perf_counter() - t0) * 1000)
                for leg, spent in legs.items():
                    spent.append(result.policy["timing_ms"].get(leg, 0.0))
            cuts = statistics.quantiles(times, n=100)
            if engine == "sqlite":
                db_bytes = sum(p.stat().st_size for p in settings.home.glob("holocron.db*") if p.is_file())
                index_bytes = directory_bytes(settings.home) - db_bytes
            else:
                from sqlalchemy import text

                with holo.db.read() as tx:
                    db_bytes = int(tx.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
                index_bytes = 0
        if engine == "postgres":
            drop_pg_database(pg_url or "", database_url or "")
    return {
        "engine": engine,
        "chunks": chunks,
        "ingest_s": ingest_s,
        "chunk_s": report.chunking.seconds,
        "embed_s": embed_s,
        "index_s": index_s,
        "p50_ms": cuts[49],
        "p95_ms": cuts[94],
        "vector_ms": statistics.median(legs["vector"]),
        "keyword_ms": statistics.median(legs["keyword"]),
        "db_bytes": db_bytes,
        "index_bytes": index_bytes,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def fresh_pg_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, make_url, text

    name = f"holocron_scale_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name)
    setup = create_engine(url, isolation_level="AUTOCOMMIT")
    with setup.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    setup.dispose()
    return url.render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def exponent(small: dict[str, Any], big: dict[str, Any], key: str) -> str:
    if small[key] <= 0 or big[key] <= 0:
        return "-"
    return f"{math.log(big[key] / small[key]) / math.log(big['chunks'] / small['chunks']):.2f}"


def print_rows(rows: list[dict[str, Any]]) -> None:
    print("\nstand-in embedding (hashed words, 384 dims): Holocron's own costs, not the model's")
    header = (
        f"{'engine':9}{'chunks':>10}{'ingest/s':>10}{'chunk/s':>10}{'embed wr/s':>11}{'index s':>9}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'vec ms':>8}{'kw ms':>8}{'DB MiB/1M':>11}{'index MiB/1M':>13}{'peak RSS':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        per_million = 1_000_000 / r["chunks"] / 2**20
        print(
            f"{r['engine']:9}{r['chunks']:>10,}"
            f"{r['chunks'] / r['ingest_s']:>10,.0f}{r['chunks'] / r['chunk_s']:>10,.0f}"
            f"{r['chunks'] / r['embed_s']:>11,.0f}{r['index_s']:>9.2f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}"
            f"{r['vector_ms']:>8.1f}{r['keyword_ms']:>8.1f}"
            f"{r['db_bytes'] * per_million:>11,.0f}{r['index_bytes'] * per_million:>13,.0f}{r['rss_mib']:>10,.0f}"
        )
    print("\ngrowth exponents (time ~ chunks^b; target: <= 1 for writes, < 1 for search)")
    print(
        f"{'engine':9}{'between':>22}{'ingest':>8}{'chunk':>8}{'embed':>8}{'index':>8}{'p50':>8}{'vector':>8}"
        f"{'keyword':>8}{'RSS':>8}"
    )
    for engine in sorted({r["engine"] for r in rows}):
        mine = sorted((r for r in rows if r["engine"] == engine), key=lambda r: r["chunks"])
        for small, big in itertools.pairwise(mine):
            between = f"{small['chunks']:,} and {big['chunks']:,}"
            cells = [
                exponent(small, big, key)
                for key in ("ingest_s", "chunk_s", "embed_s", "index_s", "p50_ms", "vector_ms", "keyword_ms")
            ]
            cells.append(exponent(small, big, "rss_mib"))
            print(f"{engine:9}{between:>22}" + "".join(f"{c:>8}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts, comma-separated")
    parser.add_argument("--pg-url", help="an admin URL of a PostgreSQL with pgvector; adds the PostgreSQL runs")
    parser.add_argument("--engines", default="sqlite,postgres", help="which of sqlite,postgres to run")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]), args.pg_url)))
        return
    wanted = args.engines.split(",")
    engines = [e for e in ("sqlite", "postgres") if e in wanted and (e == "sqlite" or args.pg_url)]
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for engine in engines:
            print(f"{engine}, {size:,} chunks ...", flush=True)
            command = [sys.executable, __file__, "--child", engine, str(size)]
            command += ["--pg-url", args.pg_url] if args.pg_url else []
            out = subprocess.run(command, check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print_rows(rows)


if __name__ == "__main__":
    main()
