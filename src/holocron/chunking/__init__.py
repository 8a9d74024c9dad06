"""Deterministic, versioned chunking: pure functions from text and policy to chunks (character windows, or
the document's structure in the model's tokens)."""

from holocron.chunking.chunker import ChunkingResult, ChunkSpan, chunk_text
from holocron.chunking.policy import (
    CHARS_PER_TOKEN_DENSE,
    CHARS_PER_TOKEN_TYPICAL,
    ChunkPolicy,
)
from holocron.chunking.structure import PATH_SEPARATOR, Tokenizer, chunk_structure, embedding_input

__all__ = [
    "CHARS_PER_TOKEN_DENSE",
    "CHARS_PER_TOKEN_TYPICAL",
    "PATH_SEPARATOR",
    "ChunkPolicy",
    "ChunkSpan",
    "ChunkingResult",
    "Tokenizer",
    "chunk_structure",
    "chunk_text",
    "embedding_input",
]
