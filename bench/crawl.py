"""The crawler's throughput and politeness against the local replay server, with latency added.

Run by hand:

    .venv/bin/python bench/crawl.py                       # 2,000 pages, 20 ms latency, 1/4/16 workers
    .venv/bin/python bench/crawl.py --items 5000 --latency-ms 50

Each run crawls ``--items`` plain-page work items (URLs of the demo corpus's real wiki HTML, served by
``tests/replay_server.py`` in a process of its own, so that the server's work is not the crawler's, each page
under its own query string so that each is its own page) into a fresh SQLite installation, with no rate
limit, and prints items per second for 1, 4 and 16 workers (``--workers``) side by side; the bound
a perfect client would reach is ``workers / latency``. Then, with ``--rate`` requests a second configured,
the highest count of requests the server saw in any one-second window (target: never above the rate plus
the burst of 1). Then an unchanged re-crawl (``--refresh``: every page asked again with its ETag) and the records
it stored (target: 0). The lake exchange round trip is ``bench/lake_exchange.py``'s.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from holocron.crawl.config import CrawlSettings  # noqa: E402
from holocron.crawl.runner import Crawler  # noqa: E402
from holocron.crawl.sources.web import WebConfig, WebSource  # noqa: E402
from holocron.store.database import Database  # noqa: E402
from holocron.store.migrate import upgrade  # noqa: E402
from replay_server import ReplayState, page_url, replay_server  # noqa: E402

PAGE = "trafilatura__en.wikipedia.org.tsne.html"


def fresh_db(folder: Path) -> Database:
    db = Database(f"sqlite:///{folder / 'holocron.db'}")
    upgrade(db)
    return db


def crawl(
    base: str, folder: Path, items: int, workers: int, *, rate: float | None, refresh: bool = False
) -> tuple[Crawler, float]:
    db = fresh_db(folder) if not refresh else Database(f"sqlite:///{folder / 'holocron.db'}")
    urls = [f"{page_url(base, PAGE)}?copy={n}" for n in range(items)]
    source = WebSource(WebConfig(kind="web", name="bench", urls=urls))
    settings = CrawlSettings(
        contact="bench@example.org", rate=rate, burst=1, host_rate=None, host_concurrency=None, lease_s=60
    )
    crawler = Crawler(db, {"bench": source}, settings, max_workers=workers, handle_signals=False)
    if refresh:
        crawler.refresh()
    else:
        crawler.seed()
    started = time.perf_counter()
    crawler.run()
    return crawler, time.perf_counter() - started


def serve(conn: Connection, latency_s: float) -> None:
    """The replay server in its own process: sends its base URL, then its arrival times when asked."""
    state = ReplayState()
    with replay_server(state, latency_s=latency_s) as (base, _):
        conn.send(base)
        while conn.recv() == "requests":
            conn.send([(r.path, r.at) for r in state.requests])


@contextmanager
def server_process(latency_s: float) -> Iterator[tuple[str, Callable[[], list[tuple[str, float]]]]]:
    """(base URL, a function that returns every request's path and monotonic arrival time so far)."""
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(theirs, latency_s), daemon=True)
    process.start()
    base = ours.recv()

    def requests() -> list[tuple[str, float]]:
        ours.send("requests")
        found: list[tuple[str, float]] = ours.recv()
        return found

    try:
        yield base, requests
    finally:
        ours.send("stop")
        process.join(timeout=10)


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="requests a second for the politeness run")
    parser.add_argument("--workers", default="1,4,16", help="worker threads of the throughput runs, comma-separated")
    args = parser.parse_args()
    with server_process(args.latency_ms / 1000) as (base, requests), tempfile.TemporaryDirectory() as tmp:
        print(f"{args.items} pages, {args.latency_ms:g} ms latency per answer, SQLite")
        print(f"{'workers':>8} {'items/s':>9} {'bound':>9} {'seconds':>8} {'stored':>7}")
        last = None
        for workers in [int(n) for n in args.workers.split(",")]:
            folder = Path(tmp) / f"w{workers}"
            folder.mkdir()
            crawler, seconds = crawl(base, folder, args.items, workers, rate=None)
            bound = workers / (args.latency_ms / 1000)
            print(f"{workers:>8} {args.items / seconds:>9.1f} {bound:>9.0f} {seconds:>8.2f} {crawler.stats.stored:>7}")
            last = folder
        before = len(requests())
        folder = Path(tmp) / "limited"
        folder.mkdir()
        items = min(args.items, int(args.rate * 6))
        crawl(base, folder, items, 16, rate=args.rate)
        seen = [at for path, at in requests()[before:] if path.startswith("/pages/")]
        mean = (len(seen) - 1) / (max(seen) - min(seen)) if len(seen) > 1 else 0.0
        print(
            f"rate limit {args.rate:g}/s (burst 1), 16 workers, {items} pages: busiest one-second window "
            f"{busiest_second(seen)} requests, {mean:.1f} requests/s on average"
        )
        assert last is not None
        crawler, seconds = crawl(base, last, args.items, 16, rate=None, refresh=True)
        stats = crawler.stats
        print(
            f"unchanged re-crawl of {args.items} pages: {stats.not_modified} answered 304, "
            f"{stats.stored} records stored, {seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
