"""Structured output that is valid by construction: decoding under a JSON schema with llguidance.

At every step the grammar compiled from the schema says which tokens may come next; every other token's logit is
set to minus infinity before the next token is picked, so the answer can only be JSON valid under the schema (as
long as the token budget lets it finish: ``done_reason`` is then ``length``). Whitespace between JSON tokens is not
allowed (the compact form), so that a small model cannot spend its budget on blank lines.

llguidance was chosen by measurement over lm-format-enforcer, outlines and xgrammar (``bench/constrained_decoding.py``
and docs/llm.md): the smallest per-token cost and a few MB installed, in Rust, with the JSON-schema coverage of the
engine OpenAI-style structured outputs are built on.

Any object with ``start``, ``mask``, ``advance`` and ``finished`` can steer :mod:`holocron.chat.local`'s decoding
loop (the benchmark plugs the other libraries in that way).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from holocron.chat.base import ChatError

__all__ = ["JsonSchemaConstraint", "SchemaError", "TokenConstraint", "json_constraint_factory"]

# Compact JSON: no whitespace between tokens, "," and ":" without spaces.
_JSON_OPTIONS: Any = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


class SchemaError(ChatError, ValueError):
    """The schema cannot be compiled into a grammar (invalid, or a feature the engine does not support)."""


class TokenConstraint(Protocol):
    """What steers one generation: which next tokens are allowed, and when the structure is complete."""

    def start(self, prompt_ids: Sequence[int]) -> None:
        """Called once, before the first token, with the prompt's token ids."""
        ...

    def mask(self, logits: Any) -> Any:
        """The next token's logits (a 1-D float tensor) with every forbidden token at minus infinity."""
        ...

    def advance(self, token: int) -> None:
        """The token picked (always one the mask allowed)."""
        ...

    def finished(self) -> bool:
        """True when nothing but the end of the answer may follow."""
        ...


class JsonSchemaConstraint:
    """One generation's llguidance matcher for one schema."""

    def __init__(self, tokenizer: Any, schema: Mapping[str, Any], *, vocab_size: int) -> None:
        import llguidance

        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                orjson.dumps(dict(schema)).decode(), defaults=_JSON_OPTIONS
            )
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"the JSON schema cannot be used for decoding: {exc}") from None
        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise SchemaError(f"the JSON schema cannot be used for decoding: {self.matcher.get_error()}")
        self.vocab_size = vocab_size

    def start(self, prompt_ids: Sequence[int]) -> None:
        return None

    def mask(self, logits: Any) -> Any:
        import torch

        allowed = torch.frombuffer(bytearray(self.matcher.compute_logit_bias()), dtype=torch.uint8)
        size = int(logits.shape[0])
        width = min(size, int(allowed.shape[0]))
        keep = torch.zeros(size, dtype=torch.bool)  # tokens beyond the grammar's vocabulary are never allowed
        keep[:width] = allowed[:width] != 0
        if not bool(keep.any()):
            why = self.matcher.get_error() or "no token allowed"
            raise ChatError(f"constrained decoding reached a dead end: {why}")
        return logits.masked_fill(~keep, float("-inf"))

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise ChatError(f"constrained decoding rejected token {token}: {self.matcher.get_error()}")

    def finished(self) -> bool:
        return bool(self.matcher.is_stopped())


class _TokenizerCache:
    """llguidance's view of a tokenizer takes about a second to build: one per tokenizer object per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[int, tuple[Any, Any]] = {}

    def get(self, hf_tokenizer: Any, vocab_size: int) -> Any:
        key = id(hf_tokenizer)
        with self._lock:
            found = self._built.get(key)
            if found is not None and found[0] is hf_tokenizer:
                return found[1]
            import llguidance.hf

            built = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size)
            self._built[key] = (hf_tokenizer, built)
            return built


_TOKENIZERS = _TokenizerCache()


def json_constraint_factory(hf_tokenizer: Any, vocab_size: int) -> Any:
    """A function from a schema to a fresh :class:`JsonSchemaConstraint` for this tokenizer."""
    tokenizer = _TOKENIZERS.get(hf_tokenizer, vocab_size)

    def build(schema: Mapping[str, Any]) -> JsonSchemaConstraint:
        return JsonSchemaConstraint(tokenizer, schema, vocab_size=vocab_size)

    return build
