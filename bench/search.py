"""Search latency and recall: the ANN index against exact numpy search, on real and on 1M perturbed vectors.

Run by hand on an indexed SciFact home (``holocron eval --folder .holocron/scifact ...`` makes one):

    .venv/bin/python bench/search.py --home .holocron/scifact                  # everything (1M build: minutes)
    .venv/bin/python bench/search.py --home .holocron/scifact --scale 200000   # a smaller scale run

Sections:
1. real SciFact chunk vectors: exact (numpy) vs hnswlib HNSW, top-10 p50/p95 and recall@10;
2. the same home through ``Searcher.search``: vector-only vs hybrid end to end (filters, SQL, fusion), with the
   query vectors precomputed so the model's encode time (identical in both modes) is left out;
3. ``--scale`` (default 1,000,000) vectors made by perturbing the real ones: exact vs hnswlib, with speedup;
4. the exact-search threshold: exact p50 by size, next to the HNSW p50;
5. the filter switch point at scale: exact over the allowed subset vs hnswlib's filtered search, by share.
Targets (1M x 384): p50 <= 5 ms, recall@10 >= 0.95, >= 10x faster than exact; hybrid <= 2x vector-only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Run as a script, this folder would come first on sys.path, where a sibling module may shadow the stdlib;
# the shared helpers of ann_choice.py are loaded from its file instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from holocron.embedding.base import Purpose  # noqa: E402
from holocron.retrieval.vector_index import ExactVectorIndex, HnswParams, HnswVectorIndex  # noqa: E402

_spec = importlib.util.spec_from_file_location("ann_choice", Path(__file__).resolve().parent / "ann_choice.py")
assert _spec is not None and _spec.loader is not None
_ann_choice = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ann_choice)
exact_top, perturbed, query_vectors = _ann_choice.exact_top, _ann_choice.perturbed, _ann_choice.query_vectors
recall, space_vectors = _ann_choice.recall, _ann_choice.space_vectors

K = 10


def timed(
    search: Callable[[np.ndarray], list[tuple[int, float]]], queries: np.ndarray
) -> tuple[float, float, list[list[int]]]:
    for q in queries[:10]:
        search(q)
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        ranked = search(q)
        times.append((time.perf_counter() - started) * 1000)
        found.append([i for i, _ in ranked])
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94], found


def row(name: str, n: int, p50: float, p95: float, rec: float | None, extra: str = "") -> dict[str, object]:
    out = {"case": name, "vectors": n, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3)}
    if rec is not None:
        out["recall@10"] = round(rec, 4)
    print(f"{name:<44} {n:>9} {p50:>9.3f} {p95:>9.3f} {'' if rec is None else f'{rec:.4f}':>10} {extra}", flush=True)
    return out


def header(title: str) -> None:
    print(f"\n## {title}\n{'case':<44} {'vectors':>9} {'p50 ms':>9} {'p95 ms':>9} {'recall@10':>10}", flush=True)


def exact_vs_ann(
    name: str, data: np.ndarray, queries: np.ndarray, params: HnswParams, cache: Path | None = None
) -> tuple[list[dict[str, object]], HnswVectorIndex]:
    ids = np.arange(len(data), dtype=np.int64)
    truth = exact_top(data, queries)

    def exact(q: np.ndarray) -> list[tuple[int, float]]:
        """The baseline: one numpy matrix product over everything (numpy's default BLAS threads)."""
        scores = data @ q
        top = np.argpartition(-scores, K - 1)[:K]
        return [(int(i), float(scores[i])) for i in top[np.argsort(-scores[top])]]

    e50, e95, _ = timed(exact, queries)
    ann: HnswVectorIndex
    if cache is not None and cache.exists():
        ann = HnswVectorIndex.load(cache, data.shape[1], params)
        built = "loaded from cache"
    else:
        ann = HnswVectorIndex(data.shape[1], params)
        started = time.perf_counter()
        ann.add(ids, data)
        built = f"built in {time.perf_counter() - started:.1f} s"
        if cache is not None:
            ann.save(cache)
    a50, a95, found = timed(lambda q: ann.search(q, K), queries)
    rows = [
        row(f"{name}: exact numpy", len(data), e50, e95, 1.0),
        row(
            f"{name}: hnswlib HNSW",
            len(data),
            a50,
            a95,
            recall(np.array(found), truth),
            f"({built}; {e50 / a50:.0f}x faster)",
        ),
    ]
    rows[-1]["speedup_p50"] = round(e50 / a50, 1)
    return rows, ann


class CachedQueries:
    """The default model's identity with precomputed query vectors, so timing leaves the encoder out."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        from holocron.embedding.local import LocalProvider

        self._local = LocalProvider()
        self.stats = self._local.stats
        self._vectors = dict(zip(texts, vectors, strict=True))

    def identity(self) -> object:
        return self._local.identity()

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> np.ndarray:
        return np.vstack([self._vectors[t] for t in texts])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def close(self) -> None:
        self._local.close()


def searcher_modes(home: Path, n_queries: int) -> list[dict[str, object]]:
    """Vector-only vs keyword vs hybrid through ``Searcher.search``: with the model encoding each query (what
    a caller sees), and with precomputed query vectors (the retrieval work alone), on both index kinds."""
    from holocron.config import Settings
    from holocron.embedding.local import LocalProvider
    from holocron.eval.beir import read_queries
    from holocron.retrieval.config import RetrievalConfig
    from holocron.retrieval.search import Searcher
    from holocron.service import Holocron

    texts = list(
        read_queries(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "queries.jsonl").values()
    )[:n_queries]
    cached = CachedQueries(texts, query_vectors(home)[: len(texts)])
    model = LocalProvider()
    model.embed(texts[:5], Purpose.QUERY)  # load the model before timing
    rows = []
    with Holocron(Settings(home=home), provider=cached) as holo:  # type: ignore[arg-type]
        cases = [("exact", 10**9, model, "model encodes"), ("exact", 10**9, cached, "precomputed")]
        cases.append(("hnsw", 0, cached, "precomputed"))
        for label, threshold, provider, encoder in cases:
            base = RetrievalConfig.from_settings(holo.settings)
            config = RetrievalConfig(
                mode=base.mode,
                rrf_k=base.rrf_k,
                candidates=base.candidates,
                index=type(base.index)(exact_threshold=threshold, hnsw=base.index.hnsw, save_every=10**9),
            )
            searcher = Searcher(holo.db, holo.space, provider, config)  # type: ignore[arg-type]
            searcher.index.sync()
            folder = getattr(searcher.index, "folder", None)
            latencies = {}
            times: dict[str, list[float]] = {"vector": [], "keyword": [], "hybrid": []}
            for text in texts:  # modes interleaved, so load spikes on a shared machine hit all three alike
                for mode in times:
                    started = time.perf_counter()
                    searcher.search(text, K, mode=mode, log=False)
                    times[mode].append((time.perf_counter() - started) * 1000)
            for mode in times:
                cuts = statistics.quantiles(times[mode], n=100)
                latencies[mode] = cuts[49]
                name = f"{mode}, {label} index, {encoder}"
                rows.append(row(name, len(searcher.index), cuts[49], cuts[94], None))
            ratio = latencies["hybrid"] / latencies["vector"]
            print(f"   hybrid / vector-only p50 = {ratio:.2f}x ({label} index, {encoder})", flush=True)
            rows.append({"case": f"hybrid/vector ratio ({label}, {encoder})", "ratio": round(ratio, 2)})
            if label == "hnsw" and folder is not None:
                for leftover in Path(folder).glob(f"space-{holo.space.embedding_space_id}.*"):
                    leftover.unlink()  # the bench's forced HNSW file; the real threshold keeps exact here
    model.close()
    return rows


def threshold_curve(data: np.ndarray, queries: np.ndarray, ann_p50: dict[int, float]) -> list[dict[str, object]]:
    rows = []
    for n in (5_000, 10_000, 20_000, 50_000, 100_000, 200_000):
        if n > len(data):
            break
        exact = ExactVectorIndex(data.shape[1])
        exact.add(np.arange(n), data[:n])
        p50, p95, _ = timed(lambda q, index=exact: index.search(q, K), queries[:200])
        rows.append(row(f"exact numpy at {n:,}", n, p50, p95, 1.0))
    for n, p50 in sorted(ann_p50.items()):
        print(f"   (hnswlib HNSW p50 at {n:,}: {p50:.3f} ms)")
    return rows


def filter_switch(ann: HnswVectorIndex, data: np.ndarray, queries: np.ndarray) -> list[dict[str, object]]:
    """The graph keeps the only copy of the vectors; the product hands exact subset search a reader over the
    embedding table (about 6 us per vector on SQLite). Here the reader is the benchmark's own array, so the
    exact rows are a lower bound: add the table read for the product's figure."""
    ann.vectors = lambda ids: (np.sort(ids), data[np.sort(ids)])
    size = len(ann)
    rng = np.random.default_rng(1)
    rows = []
    for share in (0.001, 0.005, 0.01, 0.02, 0.05, 0.2):
        allowed = set(rng.choice(size, int(size * share), replace=False).tolist())
        ann.exact_subset_max, ann.exact_subset_fraction = 10**12, 1.0
        e50, e95, truth = timed(lambda q, a=allowed: ann.search(q, K, a), queries[:100])
        ann.exact_subset_max, ann.exact_subset_fraction = 0, 0.0
        g50, g95, found = timed(lambda q, a=allowed: ann.search(q, K, a), queries[:100])
        rows.append(row(f"filter {share:.1%} allowed: exact subset", size, e50, e95, 1.0))
        rows.append(
            row(
                f"filter {share:.1%} allowed: hnswlib filtered search",
                size,
                g50,
                g95,
                recall(np.array(found), np.array(truth)),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(".holocron/scifact"))
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-searcher", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    from holocron.config import Settings

    settings = Settings()
    params = HnswParams(settings.ann_connectivity, settings.ann_expansion_add, settings.ann_expansion_search)
    data = space_vectors(args.home)
    queries = query_vectors(args.home, args.queries)
    print(f"{len(data)} real vectors of {data.shape[1]} d; {len(queries)} queries; HNSW {params.to_json()}")
    rows: list[dict[str, object]] = []
    header("1. real SciFact vectors")
    real_rows, real_ann = exact_vs_ann("scifact", data, queries, params)
    rows += real_rows
    if not args.skip_searcher:
        header("2. end to end through Searcher.search (query vectors precomputed)")
        rows += searcher_modes(args.home, args.queries)
    ann_p50 = {len(data): float(real_rows[1]["p50_ms"])}  # type: ignore[arg-type]
    if args.scale:
        header(f"3. {args.scale:,} perturbed vectors")
        big = perturbed(data, args.scale, 0.35)
        cache = args.home / f"bench-{args.scale}-{params.connectivity}-{params.expansion_add}.hnsw"
        scale_rows, big_ann = exact_vs_ann(f"perturbed {args.scale:,}", big, queries, params, cache)
        rows += scale_rows
        ann_p50[args.scale] = float(scale_rows[1]["p50_ms"])  # type: ignore[arg-type]
        header(f"3b. ef_search sweep at {args.scale:,}")
        truth = exact_top(big, queries)
        for ef in (64, 128, 256, 384, 512, 768, 1024):
            big_ann.params = HnswParams(params.connectivity, params.expansion_add, ef)
            p50, p95, found = timed(lambda q: big_ann.search(q, K), queries)
            rows.append(row(f"ef_search={ef}", args.scale, p50, p95, recall(np.array(found), truth)))
        big_ann.params = params
        header("4. exact-search threshold: exact p50 by size")
        rows += threshold_curve(big, queries, ann_p50)
        header(f"5. filters at {args.scale:,}: exact over the allowed subset vs hnswlib filtered search")
        rows += filter_switch(big_ann, big, queries)
    del real_ann
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
