"""The bounding policy: how much evidence an LLM prompt may carry, and where text is cut to fit.

Limits are in UTF-8 bytes (what a prompt budget is measured in), and every cut falls on a character
boundary: a cut text is always a prefix of the original string, never half of a multi-byte character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from holocron.config import Settings

# Below this many bytes, a cut item would be a fragment: it is dropped instead.
MIN_ITEM_BYTES = 64


@dataclass(frozen=True)
class BoundingPolicy:
    max_items: int = 8
    max_total_bytes: int = 12_000
    max_item_bytes: int = 2_000

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_total_bytes < 1 or self.max_item_bytes < 1:
            raise ValueError("evidence limits must be positive")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        max_items: int | None = None,
        max_total_bytes: int | None = None,
        max_item_bytes: int | None = None,
    ) -> BoundingPolicy:
        """The configured limits, each replaced by a caller's value when one is given (CLI flag, API field)."""
        return cls(
            max_items=max_items or settings.evidence_max_items,
            max_total_bytes=max_total_bytes or settings.evidence_max_total_bytes,
            max_item_bytes=max_item_bytes or settings.evidence_max_item_bytes,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "max_items": self.max_items,
            "max_total_bytes": self.max_total_bytes,
            "max_item_bytes": self.max_item_bytes,
            "min_item_bytes": MIN_ITEM_BYTES,
            "cut": "utf8-character-boundary",
        }


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``max_bytes``."""
    if max_bytes <= 0:
        return ""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    end = max_bytes
    # Back off over continuation bytes (10xxxxxx) to the start of the character that did not fit.
    while end > 0 and (encoded[end] & 0xC0) == 0x80:
        end -= 1
    return encoded[:end].decode("utf-8")
