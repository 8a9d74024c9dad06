"""Search latency through the HTTP API against the same search in process: p50, p95 and their ratio.

Run by hand (loads the real model and indexes the sample corpus once):

    .venv/bin/python bench/api_latency.py              # 200 queries each way
    .venv/bin/python bench/api_latency.py --n 500 --mode vector

The API runs in uvicorn on 127.0.0.1 in this process (a background thread) and is called over real HTTP with a
keep-alive client, so the difference is what the server adds: parsing, validation, JSON, the event loop and
the socket. The target is API p50 <= 1.5x in-process p50.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "corpus"
QUERIES = [
    "how do neural networks learn",
    "what does Penny like as a gift",
    "dimensionality reduction for visualisation",
    "citation of a scientific paper",
    "history of the city",
    "weather and climate",
    "programming language features",
    "where to find fish",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="Queries each way.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--mode", default=None, help="vector, keyword or hybrid (default: configured).")
    parser.add_argument("--corpus", type=Path, default=SAMPLE)
    args = parser.parse_args()

    from holocron.api import create_app
    from holocron.config import Settings
    from holocron.service import Holocron

    with tempfile.TemporaryDirectory() as home:
        holo = Holocron(Settings(home=Path(home)))
        holo.ingest([args.corpus])
        report = holo.index()
        print(f"indexed {report.chunking.chunks_total} chunks from {args.corpus}")

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(holo), host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)

        queries = [QUERIES[i % len(QUERIES)] for i in range(args.n)]
        for query in QUERIES:  # warm both paths: model, index, caches, connection
            holo.search(query, args.k, mode=args.mode)
        in_process: list[float] = []
        via_api: list[float] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for query in QUERIES:
                client.post("/api/search", json={"query": query, "k": args.k, "mode": args.mode}).raise_for_status()
            for query in queries:  # interleaved, so that drift on a shared machine hits both alike
                started = time.perf_counter()
                holo.search(query, args.k, mode=args.mode)
                in_process.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                response = client.post("/api/search", json={"query": query, "k": args.k, "mode": args.mode})
                response.raise_for_status()
                via_api.append((time.perf_counter() - started) * 1000)
        server.should_exit = True
        thread.join(timeout=10)
        holo.close()

    p50_in, p95_in = statistics.median(in_process), percentile(in_process, 0.95)
    p50_api, p95_api = statistics.median(via_api), percentile(via_api, 0.95)
    print(f"queries each way: {args.n}, k={args.k}, mode={args.mode or 'configured'}")
    print(f"in process   p50 {p50_in:7.2f} ms   p95 {p95_in:7.2f} ms")
    print(f"via HTTP API p50 {p50_api:7.2f} ms   p95 {p95_api:7.2f} ms")
    print(f"ratio        p50 {p50_api / p50_in:7.2f} x    p95 {p95_api / p95_in:7.2f} x   (target <= 1.5x)")


if __name__ == "__main__":
    main()
