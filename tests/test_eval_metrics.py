"""Ranking metrics (BEIR / trec_eval definitions) and BEIR file reading."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from holocron.eval.beir import BeirDocument, doc_id_of_source, read_qrels
from holocron.eval.metrics import (
    aggregate_documents,
    documents_from_chunks,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    query_metrics,
    recall_at_k,
)
from holocron.eval.runner import judged_queries


def test_ndcg_by_hand() -> None:
    judged = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "x"], judged) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a"], judged) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["x", "y"], judged) == 0.0
    assert ndcg_at_k(["a"], {}) == 0.0
    graded = {"a": 2, "b": 1}
    assert ndcg_at_k(["b", "a"], graded) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at_k(["a", "a", "b"], judged) == pytest.approx(1.0)  # repeats count once


def test_recall_and_mrr_by_hand() -> None:
    judged = {"a": 1, "b": 1, "c": 0}
    ranked = ["x", "c", "b"] + [f"n{i}" for i in range(200)] + ["a"]
    assert recall_at_k(ranked, judged, 10) == 0.5
    assert recall_at_k(ranked, judged, 100) == 0.5
    assert recall_at_k(ranked, judged, 1000) == 1.0
    assert mrr_at_k(ranked, judged, 10) == pytest.approx(1 / 3)  # grade 0 is not relevant
    assert mrr_at_k(["x"] * 3 + [f"n{i}" for i in range(10)] + ["a"], judged, 10) == 0.0
    metrics = query_metrics(["a", "b"], judged)
    assert metrics == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    assert mean_metrics([metrics, query_metrics([], judged)])["ndcg@10"] == 0.5


def test_documents_from_chunks_takes_the_best_chunk() -> None:
    assert documents_from_chunks(["d1", "d2", "d1", "d3"], 2) == ["d1", "d2"]


def test_sum_of_two_chunks_lifts_a_document_that_answers_twice() -> None:
    hits = [("d1", 0.9), ("d2", 0.8), ("d2", 0.7), ("d1", 0.1), ("d1", 0.05), ("d3", 0.6)]
    assert aggregate_documents(hits, "max") == ["d1", "d2", "d3"]
    assert aggregate_documents(hits, "sum2") == ["d2", "d1", "d3"]  # 1.5 > 1.0 (a third chunk never counts)
    assert aggregate_documents(hits, "sum2", limit=1) == ["d2"]
    with pytest.raises(ValueError, match="max, sum2"):
        aggregate_documents(hits, "mean")


def test_beir_reading(tmp_path: Path) -> None:
    qrels = tmp_path / "q.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t0\n2\td3\t0\n3\td9\t2\n")
    parsed = read_qrels(qrels)
    assert parsed == {"1": {"d1": 1, "d2": 0}, "2": {"d3": 0}, "3": {"d9": 2}}
    assert judged_queries({"1": "one", "2": "two", "3": "three"}, parsed) == [("1", "one"), ("3", "three")]
    assert BeirDocument("d1", " A  title ", "Body.\n").payload() == "A title\n\nBody."
    assert BeirDocument("d1", "", "Body.").payload() == "Body."
    assert doc_id_of_source("beir:4983") == "4983"


def test_run_eval_end_to_end_on_a_tiny_corpus(tmp_path: Path) -> None:
    import json

    from holocron.config import Settings
    from holocron.eval.runner import EvalProgress, EvalReport, run_eval
    from test_retrieval import HashingProvider

    docs = [
        ("d1", "Kessel", "The Kessel Run is a smuggling route."),
        ("d2", "Hoth", "Hoth is an ice planet with a rebel base."),
        ("d3", "Tatooine", "Tatooine is a desert planet with two suns."),
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": d, "title": t, "text": x}) for d, t, x in docs))
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "\n".join(json.dumps({"_id": q, "text": x}) for q, x in [("1", "smuggling route"), ("2", "ice planet")])
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\t1\n")
    seen: list[int] = []

    def evaluate(**options: Any) -> EvalReport:
        settings = Settings(home=tmp_path / "eval")  # type: ignore[call-arg]
        return run_eval(corpus, queries, qrels, settings, provider=HashingProvider(), **options)  # type: ignore[arg-type]

    report = evaluate(progress=EvalProgress(on_query=seen.append))
    assert report.documents == 3 and report.chunks == 3 and sum(seen) == 6
    by_mode = {row.mode: row for row in report.rows}
    assert set(by_mode) == {"vector", "keyword", "hybrid"}
    assert by_mode["keyword"].metrics["ndcg@10"] == 1.0 and by_mode["keyword"].queries == 2
    assert all(0.0 <= v <= 1.0 for row in report.rows for v in row.metrics.values())
    summed = evaluate(modes=["keyword"], aggregate="sum2")
    assert summed.settings["aggregate"] == "sum2" and summed.rows[0].metrics["ndcg@10"] == 1.0
