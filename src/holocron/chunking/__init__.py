"""Deterministic, versioned chunking: pure functions from text and policy to character windows."""

from holocron.chunking.chunker import ChunkingResult, ChunkSpan, chunk_text
from holocron.chunking.policy import (
    CHARS_PER_TOKEN_DENSE,
    CHARS_PER_TOKEN_TYPICAL,
    ChunkPolicy,
)

__all__ = [
    "CHARS_PER_TOKEN_DENSE",
    "CHARS_PER_TOKEN_TYPICAL",
    "ChunkPolicy",
    "ChunkSpan",
    "ChunkingResult",
    "chunk_text",
]
