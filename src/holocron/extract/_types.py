"""Result and error types shared by every extractor."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from holocron.extract._text import Section


@dataclass(frozen=True)
class ExtractedDocument:
    """Readable text of one ingested payload, exactly as the indexer chunks and embeds it.

    ``text`` starts with ``title`` as its first line when there is a title, so that every chunk of a
    short document still carries the name of what it is about.
    """

    title: str | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()
    """The headings of ``text`` with their offsets (:func:`holocron.extract._text.outline`)."""


class ExtractionError(ValueError):
    """A payload that cannot yield readable text; the message is a short reason fit for a user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_error_reason(exc: json.JSONDecodeError) -> str:
    """Describe a JSON syntax error briefly, with the position a person needs to find it."""
    where = "" if exc.msg.endswith(" at") else " at"
    return f"malformed JSON: {exc.msg}{where} line {exc.lineno} column {exc.colno}"


def load_json(payload: str) -> Any:
    """Parse JSON, turning a syntax error into an ExtractionError with a readable reason."""
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ExtractionError(json_error_reason(exc)) from None
    except RecursionError:
        raise ExtractionError("malformed JSON: nested too deeply") from None
