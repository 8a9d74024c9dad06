"""Which HNSW library for the embedded index: usearch vs FAISS (IndexHNSWFlat) vs hnswlib, on real embeddings.

Run by hand after indexing SciFact into a home (``holocron eval --folder DIR ...`` does that):

    .venv/bin/python bench/ann_choice.py --home .holocron/scifact            # real SciFact chunk vectors
    .venv/bin/python bench/ann_choice.py --home .holocron/scifact --scale 100000   # + perturbed copies

Vectors are the space's stored chunk embeddings (all-MiniLM-L6-v2, 384 d, unit length); queries are the
SciFact claims embedded by the same model (cached beside the database as ``bench-queries.npy``). Every
library gets the same graph parameters (M=16, ef_construction=128, ef_search=64), inner product, float32,
and the same thread budget. Reported per library: build seconds, single-query p50/p95 latency (one thread,
one query at a time, as the search path calls it), and recall@10 against exact numpy search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this folder would come first on sys.path, where a sibling module may shadow the stdlib.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

M, EF_CONSTRUCTION, EF_SEARCH, K = 16, 128, 64, 10
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def space_vectors(home: Path) -> np.ndarray:
    """Every stored vector of the home's (single) embedding space, as one float32 matrix."""
    from sqlalchemy import select

    from holocron.store.database import Database

    db = Database(f"sqlite:///{home / 'holocron.db'}")
    e = db.t.embedding
    with db.read() as tx:
        rows = tx.execute(select(e.c.vector).order_by(e.c.embedding_id)).scalars().all()
    db.dispose()
    return np.vstack(rows).astype(np.float32)


def query_vectors(home: Path, limit: int | None = None) -> np.ndarray:
    """The SciFact claims, embedded once by the default model and cached."""
    cache = home / "bench-queries.npy"
    if not cache.exists():
        from holocron.embedding.base import Purpose
        from holocron.embedding.local import LocalProvider
        from holocron.eval.beir import read_queries

        texts = list(read_queries(SCIFACT / "queries.jsonl").values())
        provider = LocalProvider()
        vectors = provider.embed(texts, Purpose.QUERY)
        provider.close()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.save(cache, (vectors / norms).astype(np.float32))
    queries = np.load(cache)
    return queries[:limit] if limit else queries


def perturbed(base: np.ndarray, size: int, sigma: float, seed: int = 0) -> np.ndarray:
    """``size`` unit vectors: copies of the real ones plus Gaussian noise of norm ~sigma, renormalised.

    The copies keep the real data's clusters and neighbourhoods (a random-vector benchmark has neither),
    while every vector is distinct. sigma=0.35 puts a copy at cosine ~0.94 to its original.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((size, base.shape[1]), dtype=np.float32)
    step = 100_000
    for start in range(0, size, step):
        n = min(step, size - start)
        rows = base[np.arange(start, start + n) % len(base)]
        noise = rng.standard_normal(rows.shape).astype(np.float32) * (sigma / np.sqrt(base.shape[1]))
        chunk = rows + noise
        out[start : start + n] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ matrix.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 64] = np.take_along_axis(part, order, axis=1)
    return out


def latency(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[float, float, np.ndarray]:
    for q in queries[:20]:
        search(q)  # warm caches
    times, results = [], []
    for q in queries:
        started = time.perf_counter()
        results.append(search(q))
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94], np.vstack(results)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def run_usearch(data: np.ndarray, threads: int) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    from usearch.index import Index

    index = Index(
        ndim=data.shape[1],
        metric="ip",
        dtype="f32",
        connectivity=M,
        expansion_add=EF_CONSTRUCTION,
        expansion_search=EF_SEARCH,
    )
    started = time.perf_counter()
    index.add(np.arange(len(data), dtype=np.uint64), data, threads=threads)
    build = time.perf_counter() - started
    return build, lambda q: np.asarray(index.search(q, K, threads=1).keys, dtype=np.int64)


def run_faiss(data: np.ndarray, threads: int) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(data.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    started = time.perf_counter()
    index.add(data)
    build = time.perf_counter() - started
    index.hnsw.efSearch = EF_SEARCH

    def search(q: np.ndarray) -> np.ndarray:
        faiss.omp_set_num_threads(1)
        return index.search(q.reshape(1, -1), K)[1][0].astype(np.int64)

    return build, search


def run_hnswlib(data: np.ndarray, threads: int) -> tuple[float, Callable[[np.ndarray], np.ndarray]]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=M, ef_construction=EF_CONSTRUCTION, allow_replace_deleted=True)
    index.set_num_threads(threads)
    started = time.perf_counter()
    index.add_items(data, np.arange(len(data)))
    build = time.perf_counter() - started
    index.set_ef(EF_SEARCH)
    index.set_num_threads(1)
    return build, lambda q: index.knn_query(q.reshape(1, -1), k=K)[0][0].astype(np.int64)


LIBRARIES = {"usearch": run_usearch, "faiss-hnsw": run_faiss, "hnswlib": run_hnswlib}


def compare(name: str, data: np.ndarray, queries: np.ndarray, threads: int) -> list[dict[str, object]]:
    truth = exact_top(data, queries)
    rows: list[dict[str, object]] = []
    for library, runner in LIBRARIES.items():
        build, search = runner(data, threads)
        p50, p95, found = latency(search, queries)
        rows.append(
            {
                "data": name,
                "vectors": len(data),
                "library": library,
                "build_s": round(build, 2),
                "p50_ms": round(p50, 3),
                "p95_ms": round(p95, 3),
                "recall@10": round(recall(found, truth), 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(".holocron/scifact"), help="An indexed SciFact home.")
    parser.add_argument("--scale", type=int, default=0, help="Also compare on this many perturbed vectors.")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="Threads for building.")
    args = parser.parse_args()
    data = space_vectors(args.home)
    queries = query_vectors(args.home, args.queries)
    rows = compare("scifact", data, queries, args.threads)
    if args.scale:
        rows += compare(f"scifact-perturbed-{args.scale}", perturbed(data, args.scale, 0.35), queries, args.threads)
    print()
    print(f"{'data':<28} {'library':<11} {'vectors':>9} {'build s':>9} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}")
    for row in rows:
        print(
            f"{row['data']!s:<28} {row['library']!s:<11} {row['vectors']!s:>9} {row['build_s']!s:>9} "
            f"{row['p50_ms']!s:>8} {row['p95_ms']!s:>8} {row['recall@10']!s:>10}"
        )


if __name__ == "__main__":
    main()
