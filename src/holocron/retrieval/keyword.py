"""Keyword search over chunk text: SQLite FTS5 (bm25) or PostgreSQL full text (ts_rank), filters inside.

Questions are natural language, so the query is an OR of the question's distinct terms with stopwords
removed; ranking (bm25's IDF, or ts_rank's term weights) then favours the chunks that share the rare terms.
An AND of every word would return nothing for most questions.

Both engines score every row the query matches before they sort, so an OR over a common term makes a search
score most of the corpus. On PostgreSQL a term found in more than ``common_cutoff`` of the chunks (its share,
from the planner's statistics) is therefore left out of the match and kept in the ranking, Lucene's
CommonTermsQuery: the search matches on the question's rarer terms (on the least common one when every term
is common) and ranks what it found by all of them (see :func:`terms_to_match`).
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, String, column, func, literal, literal_column, select, table, text
from sqlalchemy.dialects.postgresql import TSQUERY

from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.terms import STOPWORDS
from holocron.store.database import Tx

_TERM = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 64

_FTS = table("vector_chunk_fts", column("rowid", Integer))
_FTS_KEY = table("vector_chunk_fts_key", column("fts_key", Integer), column("chunk_id", String))


def query_terms(question: str) -> list[str]:
    """Distinct lower-cased word tokens in order of appearance, stopwords removed (all kept if that is all)."""
    tokens = [token.lower() for token in _TERM.findall(question)]
    terms = [t for t in dict.fromkeys(tokens) if t not in STOPWORDS]
    return (terms or list(dict.fromkeys(tokens)))[:MAX_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """``"a" OR "b"``: every term quoted (quotes doubled), so no term can be read as FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery(terms: Sequence[str]) -> str:
    """``a | b`` for ``to_tsquery``; terms are word characters only, which tsquery reads as plain lexemes."""
    return " | ".join(term for term in terms if _TERM.fullmatch(term))


COMMON_MIN_ROWS = 100
"""A term is common only where matching on it means scoring more rows than this: in a very small corpus every
row is cheap to score, and leaving its frequent terms out of the match would only lose hits."""


def terms_to_match(shares: Mapping[str, float | None], common_cutoff: float, rows: float) -> list[str]:
    """The terms a search matches on (any of them); the ranking still weighs every term of the question.

    ``shares`` maps each of the question's terms to the share of the ``rows`` chunks that hold it (None: not
    known, which counts as rare). A term above ``common_cutoff`` that many rows hold (:data:`COMMON_MIN_ROWS`)
    is common: matched on, it would make the search score most of the corpus, so only the rare terms are
    matched, and when every term is common, the least common one.
    """

    def common(share: float | None) -> bool:
        return share is not None and share > common_cutoff and share * rows > COMMON_MIN_ROWS

    rare = [term for term, share in shares.items() if not common(share)]
    if rare or not shares:
        return rare
    return [min(shares, key=lambda term: (shares[term] or 0.0, term))]


def idf(share: float | None, rows: float) -> float:
    """BM25's inverse document frequency of a term that ``share`` of ``rows`` chunks hold (None: as good as none).

    Weighting each term's ``ts_rank`` by it lifted SciFact's PostgreSQL keyword nDCG@10 from 0.599 to 0.665
    (``bench/keyword_common.py``): unweighted, a chunk that repeats a common word outranks one with the rare one.
    """
    total = max(rows, 1.0)
    holding = (share or 0.0) * total
    return math.log(1.0 + (total - holding + 0.5) / (holding + 0.5))


# The question's lexemes as the chunks' tsvector holds them (the same 'english' configuration), each with the
# share of chunks that hold it from the planner's statistics (most_common_elems, refreshed by ANALYZE), or NULL
# when it is not among them: rarer than the rarest listed, or no statistics yet; and the planner's row count.
_PG_LEXEME_SHARES = """
SELECT q.lexeme, s.share, (SELECT reltuples FROM pg_class WHERE oid = CAST(:qualified AS regclass)) AS rows
FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, :question))) AS q(lexeme)
LEFT JOIN (
    SELECT e.lexeme, e.share
    FROM pg_stats AS p, unnest(p.most_common_elems::text::text[], p.most_common_elem_freqs) AS e(lexeme, share)
    WHERE p.schemaname = :schema AND p.tablename = :table AND p.attname = 'content_tsv'
) AS s ON s.lexeme = q.lexeme
ORDER BY q.lexeme
"""


def _lexeme_query(lexemes: Sequence[str], operator: str) -> Any:
    """A tsquery of stored lexemes, each quoted so that it is read as it is (no second stemming, no syntax)."""
    quoted = (f"'{lexeme.replace(chr(92), chr(92) * 2).replace(chr(39), chr(39) * 2)}'" for lexeme in lexemes)
    return literal(f" {operator} ".join(quoted), String).cast(TSQUERY)


def keyword_search(
    tx: Tx, question: str, limit: int, filters: SearchFilters | None = None, *, common_cutoff: float = 1.0
) -> list[tuple[str, float]]:
    """(chunk_id, score) best first; the score is positive and higher is better on both engines.

    ``common_cutoff`` (PostgreSQL): the share of chunks above which a term is common (module docstring); 1.0
    matches on every term.
    """
    terms = query_terms(question)
    if not terms or limit <= 0:
        return []
    t = tx.t
    c, reg = t.chunk, t.source_registry
    condition = (filters or SearchFilters()).condition(t, tx.dialect)
    if tx.dialect == "postgresql":
        if not tsquery(terms):
            return []
        found = tx.execute(
            text(_PG_LEXEME_SHARES),
            {"question": " ".join(terms), "schema": c.schema or "public", "table": c.name, "qualified": t.qualified(c)},
        ).all()
        shares: dict[str, float | None] = {row.lexeme: row.share for row in found}
        if not shares:
            return []  # every term is one of the configuration's own stopwords
        vector_col: Any = literal_column(f"{t.qualified(c)}.content_tsv")
        ranking = _lexeme_query(list(shares), "|")
        rows = float(found[0].rows or 0)
        # ts_rank has no inverse document frequency: each term's rank is weighted by BM25's, from its share.
        weighted = [
            func.ts_rank(vector_col, _lexeme_query([lexeme], "|"), 1) * idf(share, rows)
            for lexeme, share in shares.items()
        ]
        score = functools.reduce(operator.add, weighted)
        matched = terms_to_match(shares, common_cutoff, rows)
        match = ranking if len(matched) == len(shares) else _lexeme_query(matched, "|")
        statement = select(c.c.chunk_id, score.label("score")).where(vector_col.op("@@")(match))
        if filters is not None and not filters.empty:  # every chunk has its source: the join only filters
            statement = statement.join(reg, reg.c.source_id == c.c.source_id).where(condition)
        statement = statement.order_by(score.desc(), c.c.chunk_id).limit(limit)
        return [(row.chunk_id, float(row.score)) for row in tx.execute(statement)]
    bm25: Any = literal_column("bm25(vector_chunk_fts)")
    match = literal_column("vector_chunk_fts").op("MATCH")(fts5_query(terms))
    if filters is None or filters.empty:
        # FTS5 alone ranks and cuts to the limit; only the winners are then mapped to chunk ids. Joining
        # first would touch every matching row (several times slower on natural-language questions).
        top = tx.execute(
            select(_FTS.c.rowid, bm25.label("score")).where(match).order_by(bm25, _FTS.c.rowid).limit(limit)
        ).all()
        if not top:
            return []
        chunk_of = dict(
            tx.execute(
                select(_FTS_KEY.c.fts_key, _FTS_KEY.c.chunk_id).where(_FTS_KEY.c.fts_key.in_([r.rowid for r in top]))
            ).all()
        )
        return [(chunk_of[r.rowid], -float(r.score)) for r in top if r.rowid in chunk_of]
    statement = (
        select(_FTS_KEY.c.chunk_id, bm25.label("score"))
        .select_from(
            _FTS.join(_FTS_KEY, _FTS_KEY.c.fts_key == _FTS.c.rowid)
            .join(c, c.c.chunk_id == _FTS_KEY.c.chunk_id)
            .join(reg, reg.c.source_id == c.c.source_id)
        )
        .where(match, condition)
        .order_by(bm25, _FTS_KEY.c.chunk_id)
        .limit(limit)
    )
    # FTS5's bm25() is negative, more negative is better.
    return [(row.chunk_id, -float(row.score)) for row in tx.execute(statement)]
