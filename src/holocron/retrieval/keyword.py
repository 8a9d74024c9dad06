"""Keyword search over chunk text: SQLite FTS5 (bm25) or PostgreSQL full text (ts_rank), filters inside.

Questions are natural language, so the query is an OR of the question's distinct terms with stopwords
removed; ranking (bm25's IDF, or ts_rank's term weights) then favours the chunks that share the rare terms.
An AND of every word would return nothing for most questions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, String, column, func, literal_column, select, table

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


def keyword_search(tx: Tx, question: str, limit: int, filters: SearchFilters | None = None) -> list[tuple[str, float]]:
    """(chunk_id, score) best first; the score is positive and higher is better on both engines."""
    terms = query_terms(question)
    if not terms or limit <= 0:
        return []
    t = tx.t
    c, reg = t.chunk, t.source_registry
    condition = (filters or SearchFilters()).condition(t, tx.dialect)
    if tx.dialect == "postgresql":
        expression = tsquery(terms)
        if not expression:
            return []
        query_ts = func.to_tsquery(literal_column("'english'::regconfig"), expression)
        vector_col: Any = literal_column(f"{t.qualified(c)}.content_tsv")
        score = func.ts_rank(vector_col, query_ts, 1)
        statement = select(c.c.chunk_id, score.label("score")).where(vector_col.op("@@")(query_ts))
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
