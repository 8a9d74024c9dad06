"""What bounding the keyword side by term frequency would cost in quality, on SciFact's judged queries.

Run by hand (needs ../shared/data/scifact; about a minute):

    .venv/bin/python bench/keyword_cutoff.py

FTS5's ``bm25()`` scores every row that matches any term of the question before it sorts, so the keyword
side of a search costs time in proportion to the rows its commonest term matches (``bench/scale.py``: the
keyword leg grows with an exponent near 1). One way to bound it is Elasticsearch's old ``cutoff_frequency``:
match only the question's terms found in at most a given share of the chunks (all of them when none is that
rare). This script prints, for each cutoff, keyword-only nDCG@10 over SciFact's judged queries (the corpus in
an FTS5 table with Holocron's tokenizer and Holocron's own query terms) and the mean number of rows matched,
which is what the ranking has to score.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sqlite3
import statistics
from pathlib import Path

from holocron.retrieval.keyword import fts5_query, query_terms

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
TOKENIZER: str = importlib.import_module("holocron.store.migrations.versions.0002_fulltext").FTS_TOKENIZER


class Corpus:
    """SciFact's abstracts in an in-memory FTS5 table, with each token's document count."""

    def __init__(self, folder: Path) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute(f"CREATE VIRTUAL TABLE f USING fts5(content, tokenize='{TOKENIZER}')")
        self.ids: list[str] = []
        with (folder / "corpus.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                doc = json.loads(line)
                self.ids.append(doc["_id"])
                text = f"{doc.get('title', '')} {doc['text']}"
                self.db.execute("INSERT INTO f (rowid, content) VALUES (?, ?)", (len(self.ids), text))
        self.db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, f, row)")
        self.doc_count = dict(self.db.execute("SELECT term, doc FROM temp.vocab").fetchall())
        # One row tokenised by the same tokenizer: how a query term is stored (the porter stem).
        self.db.execute(f"CREATE VIRTUAL TABLE temp.probe USING fts5(content, tokenize='{TOKENIZER}')")
        self.db.execute("CREATE VIRTUAL TABLE temp.probe_vocab USING fts5vocab(temp, probe, row)")

    def token(self, term: str) -> str:
        self.db.execute("DELETE FROM temp.probe")
        self.db.execute("INSERT INTO temp.probe (content) VALUES (?)", (term,))
        found = self.db.execute("SELECT term FROM temp.probe_vocab").fetchone()
        return str(found[0]) if found else term

    def share(self, term: str) -> float:
        return self.doc_count.get(self.token(term), 0) / len(self.ids)

    def search(self, terms: list[str], k: int = 10) -> tuple[list[str], int]:
        """The top k document ids, and how many rows matched."""
        match = fts5_query(terms)
        rows = self.db.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT ?", (match, k)).fetchall()
        matched = self.db.execute("SELECT count(*) FROM f WHERE f MATCH ?", (match,)).fetchone()[0]
        return [self.ids[row[0] - 1] for row in rows], int(matched)


def judged(folder: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    queries = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            query = json.loads(line)
            queries[query["_id"]] = query["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / "dev.tsv").open(encoding="utf-8") as lines:
        for line in lines:
            query_id, doc_id, score = line.rstrip("\n").split("\t")[:3]
            if score.isdigit():
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    return queries, qrels


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    gain = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]))
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), 10)))
    return gain / ideal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SCIFACT, help="a BEIR-format SciFact folder")
    parser.add_argument("--cutoffs", default="1.0,0.2,0.1,0.05,0.02", help="largest share of chunks a term may match")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"{args.data}: no corpus.jsonl (SciFact is read from ../shared/data/scifact)")
    corpus = Corpus(args.data)
    queries, qrels = judged(args.data)
    print(f"SciFact: {len(corpus.ids):,} abstracts, {len(qrels)} judged queries, keyword only (FTS5 bm25)")
    print(f"{'cutoff':>8}{'nDCG@10':>10}{'rows matched':>14}{'queries cut':>13}")
    for cutoff in (float(value) for value in args.cutoffs.split(",")):
        scores, matched, cut = [], [], 0
        for query_id, relevant in qrels.items():
            terms = query_terms(queries[query_id])
            rare = [term for term in terms if corpus.share(term) <= cutoff]
            if rare and len(rare) < len(terms):
                cut += 1
            ranked, rows = corpus.search(rare or terms)
            scores.append(ndcg_at_10(ranked, relevant))
            matched.append(rows)
        print(f"{cutoff:>8.2f}{statistics.mean(scores):>10.4f}{statistics.mean(matched):>14,.0f}{cut:>13}")


if __name__ == "__main__":
    main()
