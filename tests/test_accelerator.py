"""Where the in-process models run (holocron.accelerator): auto, cpu or cuda, the same rule for both models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datafiles import scifact_texts
from holocron.accelerator import DeviceUnavailableError, resolve_device
from holocron.chat.base import ChatError
from holocron.chat.local import LocalChatModel
from holocron.config import Settings
from holocron.embedding.base import EmbeddingError, loaded_device
from holocron.embedding.local import LocalProvider
from holocron.embedding.onnx import MIN_COSINE, min_cosine
from holocron.embedding.registry import build_provider
from holocron.service import Holocron

HAS_GPU = torch.cuda.is_available()


def test_auto_takes_a_gpu_only_when_torch_sees_one() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if HAS_GPU else "cpu")


def test_cuda_without_a_gpu_is_refused_naming_the_reason() -> None:
    if HAS_GPU:
        assert resolve_device("cuda") == "cuda"
        return
    with pytest.raises(DeviceUnavailableError, match="torch sees no GPU"):
        resolve_device("cuda")
    with pytest.raises(EmbeddingError, match="device cuda was asked for"):
        LocalProvider(device="cuda").embed(["a text"])
    with pytest.raises(ChatError, match="device cuda was asked for"):
        _ = LocalChatModel(cache_dir=Path("/nonexistent-never-written"), device="cuda").loaded


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(DeviceUnavailableError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device"):
        Settings(device="tpu")  # type: ignore[arg-type]


def test_the_setting_reaches_the_provider_and_the_run_records_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", device="cpu", local_query_backend="torch")
    provider = build_provider(settings)
    assert isinstance(provider, LocalProvider) and provider.device == "cpu"
    assert loaded_device(provider) is None  # asking does not load the model
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "tea.txt").write_text("Tea\n\nGreen tea is steamed soon after picking.")
    with Holocron(settings, provider=provider) as holo:
        holo.ingest([tmp_path / "pages"])
        report = holo.index()
        run = holo.run(report.run_id)
    assert report.metrics()["device"] == "cpu"
    assert run is not None and run["options_json"]["device"] == "cpu"
    assert loaded_device(provider) == "cpu"


@pytest.mark.gpu
def test_vectors_made_on_the_gpu_match_the_cpus_within_float_noise() -> None:
    """The space is the same on either device only if the vectors are: run where a GPU exists (make test-gpu)."""
    assert HAS_GPU, "this test needs a GPU that torch sees"
    texts = scifact_texts(abstracts=60, claims=60)
    cpu, gpu = LocalProvider(device="cpu"), LocalProvider(device="cuda")
    assert cpu.identity() == gpu.identity()  # one space: the identity does not name the device
    on_cpu, on_gpu = cpu.embed(texts), gpu.embed(texts)
    assert loaded_device(gpu) == "cuda"
    assert on_gpu.dtype == np.float32 and on_gpu.shape == on_cpu.shape == (len(texts), 384)
    assert min_cosine(on_gpu, on_cpu) >= MIN_COSINE
