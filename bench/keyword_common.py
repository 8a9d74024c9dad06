"""What PostgreSQL's common-terms rule costs in quality on SciFact, and what it saves in time: per cutoff.

Run by hand (needs ../shared/data/scifact and a PostgreSQL with pgvector; about a minute):

    .venv/bin/python bench/keyword_common.py --pg-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

The keyword side matches only on a question's terms held by at most ``keyword_common_cutoff`` of the chunks
(and more than ``COMMON_MIN_ROWS`` of them) and ranks by all of them, each weighted by its IDF
(``holocron.retrieval.keyword``). This script prints keyword-only nDCG@10, recall@100 and the mean search
time over SciFact's judged queries for each cutoff (1.0: the matching rule off). ``--floor`` sets
``COMMON_MIN_ROWS`` for the run (default: the product's 100; 0 lets the rule engage on every term). The corpus
is loaded through Holocron into a fresh database with a stand-in embedding (keyword search never reads the
vectors).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", required=True, help="an admin URL of a PostgreSQL with pgvector")
    parser.add_argument("--data", type=Path, default=SCIFACT, help="a BEIR-format SciFact folder")
    parser.add_argument("--cutoffs", default="1.0,0.2,0.1,0.05")
    parser.add_argument("--floor", type=int, default=100, help="COMMON_MIN_ROWS for this run (the product's: 100)")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"{args.data}: no corpus.jsonl (SciFact is read from ../shared/data/scifact)")

    from holocron.config import Settings
    from holocron.eval.runner import run_eval
    from holocron.retrieval import keyword
    from scale import StandInProvider, drop_pg_database, fresh_pg_database

    keyword.COMMON_MIN_ROWS = args.floor
    url = fresh_pg_database(args.pg_url)
    try:
        with tempfile.TemporaryDirectory() as home:
            print(f"SciFact dev, keyword only, PostgreSQL, COMMON_MIN_ROWS={args.floor}")
            print(f"{'cutoff':>8}{'nDCG@10':>10}{'recall@100':>12}{'ms/query':>10}")
            for cutoff in (float(value) for value in args.cutoffs.split(",")):
                settings = Settings(home=Path(home), database_url=url, keyword_common_cutoff=cutoff)
                report = run_eval(
                    args.data / "corpus.jsonl",
                    args.data / "queries.jsonl",
                    args.data / "qrels" / "dev.tsv",
                    settings,
                    provider=StandInProvider(),  # type: ignore[arg-type]
                    modes=["keyword"],
                    tag="scifact",
                )
                [row] = report.rows
                ms = row.seconds / row.queries * 1000
                print(f"{cutoff:>8.2f}{row.metrics['ndcg@10']:>10.4f}{row.metrics['recall@100']:>12.4f}{ms:>10.1f}")
    finally:
        drop_pg_database(args.pg_url, url)


if __name__ == "__main__":
    main()
