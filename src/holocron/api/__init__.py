"""The HTTP API and dashboard (FastAPI): ``create_app(settings | holocron)``."""

from holocron.api.app import create_app

__all__ = ["create_app"]
