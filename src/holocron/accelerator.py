"""Which device the in-process models run on: ``auto`` takes a GPU when torch sees one, else the CPU.

One rule for the embedding model and the chat model, resolved when a model loads (torch is imported then,
never earlier), and recorded in the run's options so that a run says where its vectors were made.
"""

from __future__ import annotations

from holocron.vocabulary import DEVICES


class DeviceUnavailableError(RuntimeError):
    """The device asked for is not there (``cuda`` on a machine whose torch sees no GPU)."""


def resolve_device(requested: str) -> str:
    """``cpu`` or ``cuda`` for ``requested`` (one of :data:`~holocron.vocabulary.DEVICES`)."""
    if requested not in DEVICES:
        raise DeviceUnavailableError(f"device is one of {', '.join(DEVICES)}, not {requested!r}")
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise DeviceUnavailableError(
            "device cuda was asked for, but torch sees no GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})"
        )
    return "cpu"
