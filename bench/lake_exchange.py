"""The lake exchange at scale: export an installation of raw pages to JSONL, import it into a fresh one, twice.

Run by hand:

    .venv/bin/python bench/lake_exchange.py                    # 10,000 records
    .venv/bin/python bench/lake_exchange.py --records 50000 --max-kb 32

The records are synthetic but realistic: each is a window (1 KiB to ``--max-kb`` KiB, from a random offset) of
one of the real pages of ``examples/corpus`` (MediaWiki API answers, OpenAlex works and authors, wiki HTML),
stamped with its own revision so that every payload is distinct, with the response headers, status, timings
and source systems a crawl stores. They are written straight into ``ingest.ingest_records`` of a fresh SQLite
installation A. Then: ``export`` A to JSONL (each snapshot recorded in A's lake), ``export`` again (every
snapshot already recorded), ``import`` into a fresh SQLite installation B, and ``import`` the same file again.
Printed: the seconds of each step, the file size, and the duplicate count (rows the second import added, plus
any version or raw record present twice in B), which must be 0.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from holocron.hashing import sha256_text
from holocron.lake.exchange import export_records, import_records
from holocron.store.database import Database
from holocron.store.exchange import add_ingest_records_in

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "examples" / "corpus"
KINDS = {
    "mediawiki-api": ("mediawiki:{site}", "application/json; charset=utf-8", "https://{site}/w/api.php?page={n}"),
    "openalex": ("openalex", "application/json", "https://api.openalex.org/works/W{n}"),
    "wiki-html": ("web:{site}", "text/html; charset=UTF-8", "https://{site}/wiki/Page_{n}"),
}


def corpus_pages() -> list[tuple[str, str, str]]:
    """(kind, site, text) for every page of the sample corpus."""
    pages = []
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file():
            kind = path.parent.name
            site = path.name.split("_", 1)[0].split("__")[0].replace("readability", "en.wikipedia.org")
            site = site if "." in site else f"{site}.example.org"
            pages.append((kind, site, path.read_text(encoding="utf-8", errors="replace")))
    return pages


def synthetic_rows(count: int, max_kb: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    pages = corpus_pages()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(count):
        kind, site, text = pages[n % len(pages)]
        system, content_type, uri = KINDS[kind]
        size = rng.randint(1024, max_kb * 1024)
        offset = rng.randint(0, max(0, len(text) - size))
        body = f"{text[offset : offset + size]}\n<!-- revision {n} of {site} -->\n"
        fetched = start + timedelta(seconds=n * 3.7, microseconds=rng.randint(0, 999_999))
        duration = round(rng.uniform(40, 900), 3)
        rows.append(
            {
                "source_system": system.format(site=site),
                "resource_id": f"{kind}/{n:06d}",
                "request_uri": uri.format(site=site, n=n),
                "request_method": "GET",
                "status_code": 200,
                "content_type": content_type,
                "content_length": len(body.encode("utf-8")),
                "payload": body,
                "response_headers": {
                    "content-type": content_type,
                    "etag": f'W/"{sha256_text(body)[:16]}"',
                    "date": fetched.strftime("%a, %d %b %Y %H:%M:%S GMT"),
                    "cache-control": "private, s-maxage=0, max-age=0",
                },
                "hash_sha256": sha256_text(body),
                "run_id": None,
                "fetched_at_utc": fetched,
                "request_headers": {"user-agent": "holocron-crawler/0.1 (bench)", "accept-encoding": "gzip"},
                "requested_at_utc": fetched - timedelta(milliseconds=duration),
                "responded_at_utc": fetched,
                "duration_ms": duration,
                "error_message": None,
                "work_item_id": None,
            }
        )
    return rows


def fresh(folder: Path, name: str) -> Database:
    db = Database(f"sqlite:///{folder / name / 'holocron.db'}")
    db.upgrade()
    return db


def duplicates(db: Database) -> int:
    """Versions or raw records present more than once (the unique constraints should make this 0)."""
    with db.read() as tx:
        x, r = tx.t.raw_exchange_record, tx.t.ingest_records
        versions = select(x.c.exchange_type, x.c.natural_key, x.c.content_sha256).group_by(
            x.c.exchange_type, x.c.natural_key, x.c.content_sha256
        )
        raws = select(r.c.source_system, r.c.resource_id, r.c.hash_sha256).group_by(
            r.c.source_system, r.c.resource_id, r.c.hash_sha256
        )
        total = 0
        for query in (versions, raws):
            total += int(
                tx.execute(select(func.count()).select_from(query.having(func.count() > 1).subquery())).scalar_one()
            )
        return total


def count(db: Database, table: str) -> int:
    with db.read() as tx:
        return int(tx.execute(select(func.count()).select_from(getattr(tx.t, table))).scalar_one())


def timed(what: str, step: Any) -> Any:
    started = time.perf_counter()
    result = step()
    print(f"{what:<22}{time.perf_counter() - started:8.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--max-kb", type=int, default=16, help="The largest page window, in KiB.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        a, b = fresh(folder, "a"), fresh(folder, "b")
        rows = synthetic_rows(args.records, args.max_kb)
        payload_mb = sum(row["content_length"] for row in rows) / 2**20
        with a.write() as tx:
            for start in range(0, len(rows), 500):
                add_ingest_records_in(tx, rows[start : start + 500])
        del rows
        print(f"{args.records:,} raw records, {payload_mb:.1f} MiB of payload, in a fresh SQLite installation")
        path = folder / "exchange.jsonl"
        first = timed("export", lambda: export_records(a, path))
        again = timed("export again", lambda: export_records(a, path))
        loaded = timed("import (fresh db)", lambda: import_records(b, path))
        reloaded = timed("re-import", lambda: import_records(b, path))
        print(f"file: {first.bytes / 2**20:.1f} MiB, {first.exported:,} records {first.by_type}")
        print(
            f"export: recorded {first.recorded:,}; again: recorded {again.recorded:,}, {again.already_recorded:,} known"
        )
        print(
            f"import: {loaded.new:,} new, {loaded.ingest_records_created:,} raw records created, "
            f"{loaded.rejected} rejected; re-import: {reloaded.imported} imported, {reloaded.unchanged:,} unchanged"
        )
        same = count(a, "ingest_records") == count(b, "ingest_records") == args.records
        dupes = reloaded.imported + reloaded.ingest_records_created + duplicates(b)
        print(f"raw records A == B == {args.records:,}: {same}")
        print(f"duplicates: {dupes}")
        a.dispose()
        b.dispose()
        if dupes or not same or loaded.rejected:
            sys.exit(1)


if __name__ == "__main__":
    main()
