"""Run artifacts on disk: ``lake/vector_runs/{run_id}/artifacts/{type}.{ext}``, with sha256 in the database."""

from holocron.lake.artifacts import Artifact, write_artifact

__all__ = ["Artifact", "write_artifact"]
