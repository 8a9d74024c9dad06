"""Evidence bundles: bounded, citable passages built from search hits for the LLM."""

from holocron.evidence.bundle import CutRecord, EvidenceBundle, EvidenceItem, build_bundle, render_text
from holocron.evidence.policy import BoundingPolicy, cut_utf8, utf8_len

__all__ = [
    "BoundingPolicy",
    "CutRecord",
    "EvidenceBundle",
    "EvidenceItem",
    "build_bundle",
    "cut_utf8",
    "render_text",
    "utf8_len",
]
