"""The chunking policy: the parameters that decide chunk boundaries and what is embedded, and their version.

The version string goes into every chunk id, so any change that can move a boundary or change the embedded
text (size, overlap, the algorithm, the tokenizer that counts, the contextual header) must change it; the cap on
chunks per source does not move boundaries and is not part of it.

Two algorithms: ``window-v1`` (character windows, sized for the model by a measured characters-per-token
ratio; :mod:`holocron.chunking.chunker`) and ``structure-v1`` (sections, paragraphs, lines, sentences, then
words, sized in the model's own tokens, with the heading path as a contextual header;
:mod:`holocron.chunking.structure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

# Characters per token of the default model's tokenizer (all-MiniLM-L6-v2, BERT uncased WordPiece), measured
# on chunk_text windows of real text: the visible text of the five wiki pages in the sample data (wiki-html/,
# tags stripped; ~220k chars) and the 5,183 SciFact abstracts (title + " " + text; ~7.8M chars).
# Typical (median) window: 4.4 characters per token (wiki 4.43, SciFact 4.49); a 2000-char window is ~450
# tokens. Used for the "~N tokens" estimate shown to people.
CHARS_PER_TOKEN_TYPICAL = 4.4
# Dense window (5th percentile: numbers, formulas, names, reference lists): 3.4 characters per token
# (wiki 3.42, SciFact 3.54 on ~860-char windows). A window of (max_input_tokens - 2) * 3.4 characters fits:
# for the 256-token model that is 863 chars, and 95.4% (wiki) / 97.1% (SciFact) of full windows fit whole.
CHARS_PER_TOKEN_DENSE = 3.4
# Tokens the model adds around every input ([CLS] and [SEP]).
SPECIAL_TOKENS = 2

DEFAULT_CHUNK_SIZE = 2000
DEFAULT_OVERLAP = 200
DEFAULT_MAX_CHUNKS = 1000
# Overlap as a fraction of the window when the policy is fitted to a model.
FITTED_OVERLAP_FRACTION = 0.1
# A structure chunk holds at most this many tokens even when the model reads more: bigger chunks retrieve worse.
MAX_STRUCTURE_TOKENS = 512
# The chunk table's policy_version column.
MAX_VERSION_CHARS = 100


@dataclass(frozen=True)
class ChunkPolicy:
    """How a source text is cut into windows; `version` names the boundaries it produces."""

    chunk_size: int = DEFAULT_CHUNK_SIZE  # characters per window (maximum)
    overlap: int = DEFAULT_OVERLAP  # characters shared with the previous window (target, never exceeded)
    max_chunks: int = DEFAULT_MAX_CHUNKS  # cap per source; windows beyond it are dropped and reported
    algorithm: str = "window-v1"  # bump when the algorithm's output changes
    # structure-v1 only: chunk_size counts the tokens of this tokenizer (the model's), specials excluded...
    tokenizer: str = ""
    # ...and the header embedded before each chunk: "path" (title › section › ...) or "" (none).
    context: str = ""

    ALGORITHMS: ClassVar[tuple[str, ...]] = ("window-v1", "structure-v1")
    CONTEXTS: ClassVar[tuple[str, ...]] = ("", "path")

    def __post_init__(self) -> None:
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        if (
            isinstance(self.overlap, bool)
            or not isinstance(self.overlap, int)
            or not 0 <= self.overlap < self.chunk_size
        ):
            raise ValueError(
                f"overlap must be an integer with 0 <= overlap < chunk_size ({self.chunk_size}), got {self.overlap!r}"
            )
        if isinstance(self.max_chunks, bool) or not isinstance(self.max_chunks, int) or self.max_chunks <= 0:
            raise ValueError(f"max_chunks must be a positive integer, got {self.max_chunks!r}")
        if self.algorithm not in self.ALGORITHMS:
            raise ValueError(f"unknown chunking algorithm {self.algorithm!r}; known: {', '.join(self.ALGORITHMS)}")
        if self.context not in self.CONTEXTS:
            raise ValueError(f"unknown chunk context {self.context!r}; known: 'path' or '' (none)")
        if self.algorithm == "structure-v1":
            if not self.tokenizer:
                raise ValueError("structure-v1 counts tokens with the model's tokenizer: name it (tokenizer=...)")
            if self.overlap:
                raise ValueError(f"structure-v1 chunks do not overlap: overlap must be 0, got {self.overlap}")
        elif self.tokenizer or self.context:
            raise ValueError(f"{self.algorithm} has no tokenizer or context; they belong to structure-v1")
        if len(self.version) > MAX_VERSION_CHARS:
            raise ValueError(f"policy version {self.version!r} is longer than {MAX_VERSION_CHARS} characters")

    @property
    def version(self) -> str:
        """Everything that decides boundaries and embedded text: "window-v1:2000/200",
        "structure-v1:254t:path:all-MiniLM-L6-v2@1a2b3c4d5e6f"."""
        if self.algorithm == "structure-v1":
            return f"{self.algorithm}:{self.chunk_size}t:{self.context or 'none'}:{self.tokenizer}"
        return f"{self.algorithm}:{self.chunk_size}/{self.overlap}"

    def to_json(self) -> dict[str, object]:
        """Everything needed to reproduce the chunks, for the run's lineage record."""
        extra: dict[str, object] = {}
        if self.algorithm == "structure-v1":
            extra = {"tokenizer": self.tokenizer, "context": self.context}
        return {
            "algorithm": self.algorithm,
            "chunk_size": self.chunk_size,
            "overlap": self.overlap,
            "max_chunks": self.max_chunks,
            **extra,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ChunkPolicy:
        """Inverse of `to_json`; refuses a record whose stored version does not match its parameters."""
        size, overlap, cap, algorithm = (
            data.get("chunk_size"),
            data.get("overlap"),
            data.get("max_chunks"),
            data.get("algorithm"),
        )
        if not (isinstance(size, int) and isinstance(overlap, int) and isinstance(cap, int)):
            raise ValueError(f"chunk policy record lacks integer chunk_size/overlap/max_chunks: {data!r}")
        if not isinstance(algorithm, str):
            raise ValueError(f"chunk policy record lacks an algorithm: {data!r}")
        tokenizer, context = data.get("tokenizer", ""), data.get("context", "")
        if not (isinstance(tokenizer, str) and isinstance(context, str)):
            raise ValueError(f"chunk policy record has a non-string tokenizer or context: {data!r}")
        policy = cls(
            chunk_size=size, overlap=overlap, max_chunks=cap, algorithm=algorithm, tokenizer=tokenizer, context=context
        )
        stored = data.get("version")
        if stored is not None and stored != policy.version:
            raise ValueError(f"chunk policy record says version {stored!r} but its parameters give {policy.version!r}")
        return policy

    @classmethod
    def fitted_to_model(cls, max_input_tokens: int | None, *, max_chunks: int = DEFAULT_MAX_CHUNKS) -> ChunkPolicy:
        """The largest window (up to the 2000/200 default) that fits the model's input in ~95% of cases.

        A window the model cannot read whole is embedded by its start only, so the rest of the chunk is
        invisible to retrieval. Models with large windows keep the default size: bigger chunks retrieve worse.
        `None` (window unknown) gives the default 2000/200.
        """
        if max_input_tokens is None:
            return cls(chunk_size=DEFAULT_CHUNK_SIZE, overlap=DEFAULT_OVERLAP, max_chunks=max_chunks)
        if isinstance(max_input_tokens, bool) or max_input_tokens <= SPECIAL_TOKENS:
            raise ValueError(
                f"max_input_tokens must be greater than {SPECIAL_TOKENS} (the special tokens), got {max_input_tokens!r}"
            )
        size = min(DEFAULT_CHUNK_SIZE, math.floor((max_input_tokens - SPECIAL_TOKENS) * CHARS_PER_TOKEN_DENSE))
        size = max(size, 1)
        overlap = min(round(size * FITTED_OVERLAP_FRACTION), size - 1)
        return cls(chunk_size=size, overlap=overlap, max_chunks=max_chunks)

    @classmethod
    def structured(
        cls,
        max_input_tokens: int,
        tokenizer: str,
        *,
        context: str = "path",
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> ChunkPolicy:
        """A structure-v1 policy that fills the model's whole input window, counted by its own tokenizer."""
        if isinstance(max_input_tokens, bool) or max_input_tokens <= SPECIAL_TOKENS:
            raise ValueError(
                f"max_input_tokens must be greater than {SPECIAL_TOKENS} (the special tokens), got {max_input_tokens!r}"
            )
        size = min(max_input_tokens - SPECIAL_TOKENS, MAX_STRUCTURE_TOKENS)
        return cls(
            chunk_size=size,
            overlap=0,
            max_chunks=max_chunks,
            algorithm="structure-v1",
            tokenizer=tokenizer,
            context=context,
        )

    def estimated_tokens(self) -> tuple[int, int]:
        """(typical, dense) token counts of a full window, from the measured characters-per-token ratios
        (structure-v1 counts tokens itself: both are its size)."""
        if self.algorithm == "structure-v1":
            return self.chunk_size, self.chunk_size
        return (
            math.ceil(self.chunk_size / CHARS_PER_TOKEN_TYPICAL),
            math.ceil(self.chunk_size / CHARS_PER_TOKEN_DENSE),
        )

    def token_fit_warning(self, max_input_tokens: int | None) -> str | None:
        """A loud message when full windows would not fit the model's input; None when they fit (or unknown).

        Judged on dense text, the same rule `fitted_to_model` uses, so a fitted policy never warns.
        """
        if max_input_tokens is None:
            return None
        if self.algorithm == "structure-v1":
            if self.chunk_size <= max_input_tokens - SPECIAL_TOKENS:
                return None
            return (
                f"structure chunks of {self.chunk_size} tokens exceed the model window of {max_input_tokens} "
                "tokens: the model will embed only the start of each chunk"
            )
        typical, dense = self.estimated_tokens()
        if dense <= max_input_tokens - SPECIAL_TOKENS:
            return None
        fitted = ChunkPolicy.fitted_to_model(max_input_tokens, max_chunks=self.max_chunks)
        return (
            f"chunk size {self.chunk_size} chars (~{typical} tokens, up to ~{dense} on dense text) exceeds "
            f"the model window of {max_input_tokens} tokens: the model will embed only the start of each "
            f"chunk (a fitted policy would be {fitted.chunk_size}/{fitted.overlap})"
        )
