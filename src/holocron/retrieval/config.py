"""Retrieval settings in one frozen object, built from :class:`holocron.config.Settings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from holocron.retrieval.fusion import RRF_K
from holocron.retrieval.space_index import IndexConfig
from holocron.retrieval.vector_index import HnswParams
from holocron.vocabulary import FUSIONS, SEARCH_MODES

if TYPE_CHECKING:
    from holocron.config import Settings

MODES = SEARCH_MODES


@dataclass(frozen=True)
class RetrievalConfig:
    mode: str = "hybrid"
    fusion: str = "convex"  # SciFact dev nDCG@10 0.757 against RRF's 0.730, equal weights (docs/retrieval.md)
    rrf_k: int = RRF_K
    vector_weight: float = 1.0
    keyword_weight: float = 1.0
    # Each list contributes this many candidates to the fusion (more only when a per-source cap needs them).
    candidates: int = 100
    # PostgreSQL: a term in more than this share of the chunks ranks but is not matched on (retrieval/keyword.py).
    keyword_common_cutoff: float = 0.02  # SciFact: bench/keyword_common.py, docs/retrieval.md
    index: IndexConfig = field(default_factory=IndexConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion is one of {', '.join(FUSIONS)}, not {self.fusion!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalConfig:
        return cls(
            mode=settings.search_mode,
            fusion=settings.search_fusion,
            rrf_k=settings.rrf_k,
            vector_weight=settings.rrf_vector_weight,
            keyword_weight=settings.rrf_keyword_weight,
            candidates=settings.rrf_candidates,
            keyword_common_cutoff=settings.keyword_common_cutoff,
            index=IndexConfig(
                exact_threshold=settings.ann_exact_threshold,
                hnsw=HnswParams(
                    connectivity=settings.ann_connectivity,
                    expansion_add=settings.ann_expansion_add,
                    expansion_search=settings.ann_expansion_search,
                ),
                save_every=settings.ann_save_every,
                filter_exact_max=settings.ann_filter_exact_max,
                filter_exact_fraction=settings.ann_filter_exact_fraction,
            ),
        )

    def policy_json(self, mode: str) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": mode}
        if mode == "hybrid":
            out.update(
                {
                    "fusion": self.fusion,
                    **({"rrf_k": self.rrf_k} if self.fusion == "rrf" else {}),
                    "weights": {"vector": self.vector_weight, "keyword": self.keyword_weight},
                    "candidates": self.candidates,
                }
            )
        return out
