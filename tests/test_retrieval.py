"""Search modes, filters applied inside the search, diversity, query logging; hybrid on a small real case."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from datafiles import data_file
from holocron.config import Settings
from holocron.embedding.base import ModelIdentity, ProviderStats, Purpose
from holocron.hashing import sha256_text
from holocron.retrieval.config import RetrievalConfig
from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.fusion import cap_per_group, reciprocal_rank_fusion
from holocron.retrieval.keyword import fts5_query, idf, keyword_search, query_terms, terms_to_match, tsquery
from holocron.service import Holocron
from holocron.store.retrievals import get_retrieval
from holocron.store.sources import RawRecord, register_records
from holocron.store.types import utcnow

DIMS = 64


class HashingProvider:
    """A deterministic bag-of-words embedder: shared words make close vectors. No model, instant."""

    def __init__(self) -> None:
        self.stats = ProviderStats()

    def identity(self) -> ModelIdentity:
        return ModelIdentity(
            provider="test",
            model_name="hashing-bow",
            model_tag="1",
            model_digest="sha256:" + "0" * 64,
            dimensions=DIMS,
            max_input_tokens=None,
            normalized=True,
        )

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> np.ndarray:
        self.stats.calls += 1
        self.stats.texts += len(texts)
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                out[row, digest[0] % DIMS] += 1.0 if digest[1] % 2 else -1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def close(self) -> None:
        pass


def record(
    resource_id: str,
    text: str,
    *,
    system: str = "files",
    source_type: str = "text",
    tags: Sequence[str] = (),
    date: datetime | None = None,
) -> RawRecord:
    return RawRecord(
        source_system=system,
        resource_id=resource_id,
        request_uri=f"test:{resource_id}",
        source_type=source_type,
        content_type="text/plain" if source_type == "text" else "text/markdown",
        payload=text,
        content_sha256=sha256_text(text),
        fetched_at_utc=utcnow(),
        tags=tuple(tags),
        source_date_utc=date,
    )


def open_store(db_url: str, tmp_path: Path, provider: object | None = None, **settings: object) -> Holocron:
    return Holocron(
        Settings(database_url=db_url, home=tmp_path / "home", **settings),  # type: ignore[arg-type]
        provider=provider or HashingProvider(),  # type: ignore[arg-type]
    )


def indexed(holo: Holocron, records: Sequence[RawRecord]) -> Holocron:
    register_records(holo.db, list(records))
    holo.index()
    return holo


FLEET = [
    record(
        "wiki/kessel-1.md",
        "Kessel run\n\nThe Kessel Run is a smuggling route near the Maw, flown by smugglers carrying spice.",
        system="wiki",
        source_type="markdown",
        tags=["canon", "routes"],
        date=datetime(2020, 5, 1, tzinfo=UTC),
    ),
    record(
        "wiki/kessel-2.md",
        "Kessel mines\n\nKessel is a planet whose spice mines are worked by prisoners; smugglers run spice.",
        system="wiki",
        source_type="markdown",
        tags=["canon"],
        date=datetime(2021, 5, 1, tzinfo=UTC),
    ),
    record(
        "forum/kessel-3.txt",
        "Kessel fan theory\n\nA fan theory says the Kessel spice route was shorter than twelve parsecs.",
        system="forum",
        tags=["legends"],
        date=datetime(2022, 5, 1, tzinfo=UTC),
    ),
    record(
        "forum/hoth.txt",
        "Hoth\n\nHoth is an ice planet where the rebels hid their base from the Empire.",
        system="forum",
        tags=["legends", "planets"],
        date=datetime(2023, 5, 1, tzinfo=UTC),
    ),
]


# -- pure parts ------------------------------------------------------------------------------------


def test_query_terms_drop_stopwords_and_escape_syntax() -> None:
    assert query_terms("What is the Kessel Run, and who flew it?") == ["kessel", "run", "flew"]
    assert query_terms("the of and") == ["the", "of", "and"]  # nothing but stopwords: keep them
    hostile = 'NEAR(a b) "quoted" col:value * -minus AND OR'
    terms = query_terms(hostile)
    assert all(re.fullmatch(r"\w+", t) for t in terms)
    assert fts5_query(["a", 'b"c']) == '"a" OR "b""c"'
    assert tsquery(["spice", "mines"]) == "spice | mines"


def test_rrf_adds_weighted_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion({"v": ["a", "b", "c"], "k": ["c", "a", "d"]}, k=60)
    scores = {f.key: f.score for f in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["d"] == pytest.approx(1 / 63)
    assert [f.key for f in fused][:2] == ["a", "c"]
    heavy = reciprocal_rank_fusion({"v": ["a", "b"], "k": ["b", "a"]}, {"v": 1.0, "k": 3.0}, k=60)
    assert heavy[0].key == "b" and heavy[0].ranks == {"v": 2, "k": 1}


def test_cap_per_group_keeps_order() -> None:
    items = [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("c", 5), ("b", 6)]
    assert cap_per_group(items, lambda i: i[0], 1) == [("a", 1), ("b", 3), ("c", 5)]
    assert cap_per_group(items, lambda i: i[0], 2) == [("a", 1), ("a", 2), ("b", 3), ("c", 5), ("b", 6)]
    assert cap_per_group(items, lambda i: i[0], None) == items


# -- on both engines -------------------------------------------------------------------------------


def test_keyword_search_on_both_engines(db_url: str, tmp_path: Path) -> None:
    with indexed(open_store(db_url, tmp_path), FLEET) as holo:
        with holo.db.read() as tx:
            ranked = keyword_search(tx, "Which planet has spice mines?", 10)
            assert ranked and all(score > 0 for _, score in ranked)
            assert keyword_search(tx, 'NEAR("spice" * -) OR AND', 10)  # hostile input is only words
            assert keyword_search(tx, "zzzunknownword", 10) == []
            assert keyword_search(tx, "prisoners", 10)
        top = holo.search("spice mines", 1, mode="keyword", log=False).hits[0]
        assert top.source_id == "wiki:wiki/kessel-2.md"
        # Deleted chunks leave the full-text index with them (triggers / the generated column).
        chunk = holo.db.t.chunk
        with holo.db.write() as tx:
            tx.execute(chunk.delete().where(chunk.c.source_id == "wiki:wiki/kessel-2.md"))
        with holo.db.read() as tx:
            assert keyword_search(tx, "prisoners", 10) == []
            assert keyword_search(tx, "spice", 10)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_filters_are_applied_inside_the_search(db_url: str, tmp_path: Path, mode: str) -> None:
    with indexed(open_store(db_url, tmp_path), FLEET) as holo:
        question = "Kessel spice smugglers route"

        def sources(filters: SearchFilters, k: int = 10) -> list[str]:
            return [h.source_id for h in holo.search(question, k, mode=mode, filters=filters, log=False).hits]

        everything = sources(SearchFilters())
        assert {"wiki:wiki/kessel-1.md", "wiki:wiki/kessel-2.md", "forum:forum/kessel-3.txt"} <= set(everything)
        assert set(sources(SearchFilters.of(source_systems=["forum"]))) <= {
            "forum:forum/kessel-3.txt",
            "forum:forum/hoth.txt",
        }
        assert "forum:forum/kessel-3.txt" in sources(SearchFilters.of(source_systems=["forum"]))
        assert set(sources(SearchFilters.of(source_types=["markdown"]))) == {
            "wiki:wiki/kessel-1.md",
            "wiki:wiki/kessel-2.md",
        }
        assert sources(SearchFilters.of(tags=["routes"])) == ["wiki:wiki/kessel-1.md"]
        assert set(sources(SearchFilters.of(tags=["routes", "legends"]))) >= {
            "wiki:wiki/kessel-1.md",
            "forum:forum/kessel-3.txt",
        }
        dated = sources(
            SearchFilters.of(since=datetime(2021, 1, 1, tzinfo=UTC), until=datetime(2022, 12, 31, tzinfo=UTC))
        )
        assert set(dated) == {"wiki:wiki/kessel-2.md", "forum:forum/kessel-3.txt"}
        assert sources(SearchFilters.of(source_ids=["wiki:wiki/kessel-2.md"])) == ["wiki:wiki/kessel-2.md"]
        assert sources(SearchFilters.of(tags=["no-such-tag"])) == []


def test_filtered_search_returns_k_when_k_exist(db_url: str, tmp_path: Path) -> None:
    """Twenty near-duplicates outrank the filtered-in notes; filtering after taking k would return none."""
    crowd = [
        record(f"crowd/{i}.txt", f"Spice report {i}\n\nKessel spice smugglers route.", system="crowd")
        for i in range(20)
    ]
    notes = [record(f"notes/{i}.txt", f"Note {i}\n\nA note about spice {i}.", system="notes") for i in range(12)]
    with indexed(open_store(db_url, tmp_path), crowd + notes) as holo:
        for mode in ("vector", "hybrid"):
            plain = holo.search("Kessel spice smugglers route", 10, mode=mode, log=False).hits
            assert all(h.source_system == "crowd" for h in plain)
            filtered = holo.search(
                "Kessel spice smugglers route",
                10,
                mode=mode,
                filters=SearchFilters.of(source_systems=["notes"]),
                log=False,
            ).hits
            assert len(filtered) == 10 and all(h.source_system == "notes" for h in filtered)
        keyword = holo.search("spice", 10, mode="keyword", filters=SearchFilters.of(source_systems=["notes"]))
        assert len(keyword.hits) == 10 and all(h.source_system == "notes" for h in keyword.hits)


def test_max_per_source_spreads_hits(db_url: str, tmp_path: Path) -> None:
    long_page = "Spice\n\n" + "\n\n".join(f"Paragraph {i}: spice from Kessel is refined." for i in range(60))
    others = [record(f"other/{i}.txt", f"Other {i}\n\nSpice trade note {i}.") for i in range(6)]
    with indexed(
        open_store(db_url, tmp_path, chunk_size=200, chunk_overlap=0), [record("long.txt", long_page), *others]
    ) as holo:
        for mode in ("vector", "keyword", "hybrid"):
            capped = holo.search("spice Kessel refined", 5, mode=mode, max_per_source=1, log=False).hits
            assert len(capped) == 5 and len({h.source_id for h in capped}) == 5
            two = holo.search("spice Kessel refined", 7, mode=mode, max_per_source=2, log=False).hits
            assert len(two) == 7
            assert max(sum(h.source_id == s for h in two) for s in {h.source_id for h in two}) <= 2
        uncapped = holo.search("spice Kessel refined", 5, mode="keyword", log=False).hits
        assert all(h.source_id == "files:long.txt" for h in uncapped)


def test_every_search_is_logged_with_its_policy(db_url: str, tmp_path: Path) -> None:
    with indexed(open_store(db_url, tmp_path, search_fusion="rrf"), FLEET) as holo:
        from holocron.store.runs import start_run

        run_id = start_run(holo.db, "RETRIEVE_TEST", options={}, space=holo.space)
        filters = SearchFilters.of(tags=["canon"])
        result = holo.search("spice", 3, run_id=run_id, mode="hybrid", filters=filters, max_per_source=1)
        with holo.db.read() as tx:
            logged = get_retrieval(tx, result.retrieval_id)
        assert logged is not None
        row, hits = logged
        assert row["query_text"] == "spice" and row["mode"] == "hybrid" and row["run_id"] == run_id
        assert row["filters_json"] == {"tags": ["canon"]}
        policy = row["policy_json"]
        assert policy["fusion"] == "rrf" and policy["rrf_k"] == 60 and policy["max_per_source"] == 1
        assert {"embed", "vector", "keyword"} <= set(policy["timing_ms"]) and row["latency_ms"] > 0
        assert [h["chunk_id"] for h in hits] == [h.chunk_id for h in result.hits]
        assert hits[0]["metadata_json"]["evidence_id"] == result.hits[0].evidence_id
        json.dumps(policy)


def test_convex_fusion_is_the_default_and_logged(db_url: str, tmp_path: Path) -> None:
    with indexed(open_store(db_url, tmp_path, rrf_vector_weight=3.0), FLEET) as holo:
        result = holo.search("ice planet rebels", 3, mode="hybrid")
        assert result.policy["fusion"] == "convex" and "rrf_k" not in result.policy
        assert result.policy["weights"] == {"vector": 3.0, "keyword": 1.0}
        assert 0.0 < result.hits[0].score <= 1.0  # scaled scores mixed with weights that sum to one
        assert result.hits[0].source_id == "forum:forum/hoth.txt"
    with pytest.raises(ValueError, match="fusion is one of rrf, convex"):
        RetrievalConfig(fusion="max")


def test_a_hit_knows_the_section_it_lies_in(db_url: str, tmp_path: Path) -> None:
    guide = "# Guide\n\nIntro to the hyperdrive.\n\n## Setup\n\nSteps.\n\n### Linux\n\nInstall the motivator coil.\n"
    with indexed(
        open_store(db_url, tmp_path, chunk_size=40, chunk_overlap=0),
        [record("guide.md", guide, source_type="markdown")],
    ) as holo:
        hits = holo.search("motivator coil", 3, mode="keyword", log=False).hits
        assert hits[0].heading_path == ["Setup", "Linux"] and hits[0].source_ref["section"] == ["Setup", "Linux"]
        lead = holo.search("hyperdrive", 1, mode="keyword", log=False).hits[0]
        assert lead.heading_path == [] and "section" not in lead.source_ref


def test_plain_signature_still_works(db_url: str, tmp_path: Path) -> None:
    """``search(query, k, run_id=None, log=True)`` as the job queue calls it."""
    with indexed(open_store(db_url, tmp_path), FLEET) as holo:
        result = holo.searcher.search("ice planet rebels", 2)
        assert result.retrieval_id and result.hits[0].source_id == "forum:forum/hoth.txt"
        assert holo.searcher.search("ice planet rebels", 2, log=False).retrieval_id == ""


# -- a small real case -----------------------------------------------------------------------------


# The subset, fixed in advance by file order and never by what a search returned: the first CASE_QUERIES claim
# ids of qrels/dev.tsv, every abstract judged relevant to them, and the first CASE_DISTRACTORS abstracts of the
# corpus (tests/data/scifact keeps the full corpus's order; see its README).
CASE_QUERIES = 50
CASE_DISTRACTORS = 50


def _scifact_case() -> tuple[list[RawRecord], list[tuple[str, set[str]]]]:
    from holocron.eval.beir import corpus_records, read_corpus, read_qrels, read_queries

    qrels_path = data_file("scifact/qrels/dev.tsv")
    lines = qrels_path.read_text(encoding="utf-8").splitlines()[1:]
    claims = list(dict.fromkeys(line.split("\t")[0] for line in lines))[:CASE_QUERIES]
    qrels = read_qrels(qrels_path)
    queries = read_queries(data_file("scifact/queries.jsonl"))
    judged = [(queries[q], {d for d, g in qrels[q].items() if g > 0}) for q in claims]
    relevant = set().union(*(docs for _, docs in judged))
    corpus = list(read_corpus(data_file("scifact/corpus.jsonl")))
    distractors = {d.doc_id for d in corpus[:CASE_DISTRACTORS]}
    docs = [d for d in corpus if d.doc_id in relevant or d.doc_id in distractors]
    assert len(claims) == CASE_QUERIES and {d.doc_id for d in docs} >= relevant, "tests/data/scifact is incomplete"
    return list(corpus_records(iter(docs), tag="scifact")), judged


@pytest.mark.model
def test_hybrid_beats_either_mode_alone(tmp_path: Path) -> None:
    """Mean nDCG@10 of hybrid search is above vector-only and keyword-only search, with the real model, on a
    SciFact subset chosen by file order alone (``_scifact_case``): the first 50 judged dev claims of
    ``qrels/dev.tsv``, their 51 relevant abstracts, and the first 50 abstracts of ``corpus.jsonl`` as
    distractors (101 abstracts, about 240 chunks). The relevant abstracts of the other claims are distractors
    too. Measured when this subset was fixed: vector 0.962, keyword 0.947, hybrid 0.971; other sizes of the same
    construction (12 to 80 claims, 0 to 100 distractors) gave hybrid above both everywhere except 12 claims with
    100 distractors, where vector search was perfect (1.0) and hybrid 0.993."""
    from holocron.embedding.local import LocalProvider
    from holocron.eval.beir import doc_id_of_source
    from holocron.eval.metrics import ndcg_at_k

    records, judged = _scifact_case()
    with indexed(open_store(f"sqlite:///{tmp_path / 'h.db'}", tmp_path, LocalProvider()), records) as holo:
        means = {}
        for mode in ("vector", "keyword", "hybrid"):
            scores = []
            for question, relevant in judged:
                hits = holo.search(question, 10, mode=mode, max_per_source=1, log=False).hits
                ranked = [doc_id_of_source(h.source_id) for h in hits]
                scores.append(ndcg_at_k(ranked, dict.fromkeys(relevant, 1), 10))
            means[mode] = sum(scores) / len(scores)
    assert means["hybrid"] > means["vector"] and means["hybrid"] > means["keyword"], means


def test_common_terms_rank_but_only_the_rare_ones_match() -> None:
    shares = {"harbour": 0.9, "ferry": 0.4, "lighthouse": 0.01, "unlisted": None}
    assert terms_to_match(shares, 0.1, rows=1_000_000) == ["lighthouse", "unlisted"]
    assert terms_to_match(shares, 1.0, rows=1_000_000) == list(shares)  # the cutoff off
    # In a small corpus scoring every matching row is cheap: no term is common there.
    assert terms_to_match(shares, 0.1, rows=100) == list(shares)
    # Every term common: the least common one is matched on.
    assert terms_to_match({"harbour": 0.9, "ferry": 0.4}, 0.1, rows=1_000_000) == ["ferry"]
    assert terms_to_match({}, 0.1, rows=1_000_000) == []


def test_a_rarer_term_weighs_more() -> None:
    assert idf(None, 10_000) > idf(0.001, 10_000) > idf(0.1, 10_000) > idf(0.9, 10_000) > 0
    assert idf(0.5, 0) > 0  # no statistics yet: every term weighs alike, none is dropped
