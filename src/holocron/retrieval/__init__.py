"""Retrieval: vector (exact or ANN), keyword and hybrid search with filters, diversity and a query log."""

from holocron.retrieval.config import MODES, RetrievalConfig
from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.search import Hit, Searcher, SearchResult

__all__ = ["MODES", "Hit", "RetrievalConfig", "SearchFilters", "SearchResult", "Searcher"]
