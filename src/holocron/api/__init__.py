"""The HTTP API and dashboard (FastAPI): ``create_app(settings | holocron)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from holocron.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` on first use, so importing ``holocron.api.models`` does not build the whole app."""
    if name == "create_app":
        from holocron.api.app import create_app

        return create_app
    raise AttributeError(f"module 'holocron.api' has no attribute {name!r}")
