"""Batching by token budget as well as by count, with results always in input order.

Batches are contiguous slices of the input, so reassembling them in order is concatenation: no sort, no index
bookkeeping to get wrong. A single input larger than the budget travels alone (the server truncates it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from holocron.chunking import CHARS_PER_TOKEN_DENSE
from holocron.embedding.base import EmbeddingError
from holocron.vectors import Matrix

# Tokens a BERT-style model adds around every input; estimates include them.
SPECIAL_TOKENS = 2


def estimate_tokens(texts: Sequence[str], *, max_tokens: int | None = None) -> list[int]:
    """A deliberately high token count from characters (dense text), for servers whose tokenizer is remote.

    Over-estimating makes batches a little smaller than they could be; under-estimating would overrun the
    server's limits, so the dense ratio (3.4 characters per token, see :mod:`holocron.chunking.policy`) is used.
    ``max_tokens`` caps each count at what the server will actually read after truncation.
    """
    counts = [math.ceil(len(text) / CHARS_PER_TOKEN_DENSE) + SPECIAL_TOKENS for text in texts]
    return [min(count, max_tokens) for count in counts] if max_tokens else counts


def plan_batches(token_counts: Sequence[int], *, max_items: int, max_tokens: int) -> list[slice]:
    """Contiguous slices, each at most ``max_items`` inputs and ``max_tokens`` tokens (one input may exceed it)."""
    if max_items < 1 or max_tokens < 1:
        raise ValueError("max_items and max_tokens must be at least 1")
    batches: list[slice] = []
    start = 0
    tokens = 0
    for index, count in enumerate(token_counts):
        size = index - start
        if size and (size >= max_items or tokens + count > max_tokens):
            batches.append(slice(start, index))
            start, tokens = index, 0
        tokens += count
    if start < len(token_counts):
        batches.append(slice(start, len(token_counts)))
    return batches


def embed_batched(
    texts: Sequence[str],
    token_counts: Sequence[int],
    embed_one: Callable[[list[str]], Matrix],
    *,
    max_items: int,
    max_tokens: int,
    dimensions: int,
) -> Matrix:
    """Embed ``texts`` batch by batch and return one matrix in input order.

    With a single batch the server's answer is returned as it came, so that the caller's validation (which knows
    the chunk ids) reports its count, dimensions and values. With several, each answer must have exactly one row
    per input and the same width, otherwise the rows could not be put back in order: the call fails naming the
    positions of the inputs in the failed batch.
    """
    if len(texts) != len(token_counts):
        raise ValueError("one token count per text")
    if not texts:
        return np.zeros((0, dimensions), dtype=np.float32)
    batches = plan_batches(token_counts, max_items=max_items, max_tokens=max_tokens)
    if len(batches) == 1:
        return embed_one(list(texts))
    parts: list[Matrix] = []
    width: int | None = None
    for batch in batches:
        part = embed_one(list(texts[batch]))
        expected = batch.stop - batch.start
        if part.ndim != 2 or part.shape[0] != expected or (width is not None and part.shape[1] != width):
            shape = "x".join(str(n) for n in part.shape)
            raise EmbeddingError(
                f"server returned a {shape} matrix for inputs {batch.start}..{batch.stop - 1} "
                f"({expected} inputs); the batch cannot be assembled in order"
            )
        width = part.shape[1]
        parts.append(part)
    return np.concatenate(parts, axis=0)
