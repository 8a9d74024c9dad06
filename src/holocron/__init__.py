"""Holocron: raw pages to lineage-tracked embeddings and bounded LLM evidence."""

__version__ = "0.1.0"
