"""Which constrained-decoding library the local chat model uses: measured, not guessed.

Run by hand (it loads the real local chat model; the first run also converts and caches its weights):

    .venv/bin/python bench/constrained_decoding.py [--threads 1] [--num-predict 48] [--cache-dir DIR]

The same ten short classification-and-extraction prompts are answered under one small pydantic schema by every
candidate that is installed (lm-format-enforcer, outlines, xgrammar, llguidance) and with no constraint at all,
all through the same greedy decoding loop (:func:`holocron.chat.local.decode`), so that the only difference is the
mask each library computes. Prompts are run round-robin across the candidates, so that a busy machine slows all of
them alike. Printed side by side:

* valid: answers that parse under the pydantic model on the first attempt;
* tok/s: answer tokens per second of decoding (forward passes and masks together);
* overhead: decoding milliseconds per token above an unconstrained replay of the very same tokens (the same
  forward passes without the library), so that answers of different lengths do not distort it;
* mask: milliseconds per token spent inside the library (computing and applying the mask, advancing its state);
* prep: one-time preparation for the tokenizer (seconds), compile: per schema (milliseconds);
* footprint: what the library and the dependencies it adds to this project's occupy on disk.

Candidates not installed are listed as such; install them into a scratch environment to compare (the project
itself depends only on the chosen one).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from holocron.chat.base import ChatOptions, as_messages
from holocron.chat.local import LoadedChatModel, LocalChatModel, decode

CANDIDATES = ("lm-format-enforcer", "outlines", "xgrammar", "llguidance")


class Review(BaseModel):
    """The schema every answer must follow."""

    model_config = ConfigDict(extra="forbid")

    sentiment: Literal["positive", "negative", "neutral"]
    topic: Literal["food", "service", "price", "delivery", "other"]
    city: str = Field(max_length=24)


SYSTEM = (
    "Read the customer review and answer with one JSON object: "
    '{"sentiment": "positive" | "negative" | "neutral", '
    '"topic": "food" | "service" | "price" | "delivery" | "other", "city": the city named in the review}.'
)
REVIEWS = [
    "The pasta in our Rome branch was superb, best carbonara I have had.",
    "Delivery to Leeds took three weeks and the box arrived crushed.",
    "Staff at the Lyon shop were rude and ignored us for twenty minutes.",
    "Prices in the Oslo store are far too high for what you get.",
    "Ordered a sofa to Porto. It arrived on time. Nothing special.",
    "The waiter in Austin was friendly and remembered our names.",
    "My parcel to Dublin never came and nobody answers the phone.",
    "Cheap and cheerful: great value lunch menu in Krakow.",
    "The soup served in Boston was cold and tasted of nothing.",
    "Opened an account in Nairobi online, it was quick and painless.",
]


# -- candidates: each turns a schema into an object with start / mask / advance / finished ------------------------


class Candidate:
    name = "none"
    prep_s = 0.0

    def prepare(self, loaded: LoadedChatModel) -> None:
        return None

    def constraint(self, schema: dict[str, Any]) -> Any:
        return None


class NoConstraint(Candidate):
    pass


def _keep(logits: Any, allowed: Sequence[int]) -> Any:
    import torch

    keep = torch.zeros(int(logits.shape[0]), dtype=torch.bool)
    keep[torch.tensor(list(allowed), dtype=torch.long)] = True
    return logits.masked_fill(~keep, float("-inf"))


class Llguidance(Candidate):
    name = "llguidance"

    def prepare(self, loaded: LoadedChatModel) -> None:
        self.loaded = loaded
        started = time.perf_counter()
        loaded.json_constraint({"type": "object"})  # builds (and keeps) the tokenizer's llguidance view
        self.prep_s = time.perf_counter() - started

    def constraint(self, schema: dict[str, Any]) -> Any:
        return self.loaded.json_constraint(schema)


class LmFormatEnforcer(Candidate):
    name = "lm-format-enforcer"

    def prepare(self, loaded: LoadedChatModel) -> None:
        started = time.perf_counter()
        self.data = self._tokenizer_data(loaded)
        self.eos = loaded.tokenizer.eos_token_id
        self.prep_s = time.perf_counter() - started

    @staticmethod
    def _tokenizer_data(loaded: LoadedChatModel) -> Any:
        """The library's own builder; its transformers integration does not import under transformers 5
        (``transformers.tokenization_utils`` is gone), so its few lines are repeated here in that case."""
        try:
            from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data
        except ImportError:
            from lmformatenforcer import TokenEnforcerTokenizerData
        else:
            return build_token_enforcer_tokenizer_data(loaded.tokenizer, vocab_size=loaded.vocab_size)
        tokenizer = loaded.tokenizer
        zero = tokenizer.encode("0")[-1]
        special = set(tokenizer.all_special_ids)
        regular = []
        for token in range(loaded.vocab_size):
            if token in special:
                continue
            after_zero = tokenizer.decode([zero, token])[1:]
            regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))

        def decoder(tokens: list[int]) -> str:
            return str(tokenizer.decode(tokens)).rstrip("\ufffd")

        return TokenEnforcerTokenizerData(regular, decoder, tokenizer.eos_token_id, False, loaded.vocab_size)

    def constraint(self, schema: dict[str, Any]) -> Any:
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser, TokenEnforcer

        parser = JsonSchemaParser(schema, config=CharacterLevelParserConfig(max_consecutive_whitespaces=1))
        enforcer = TokenEnforcer(self.data, parser)
        eos = self.eos

        class Steer:
            def start(self, prompt_ids: Sequence[int]) -> None:
                self.sequence = list(prompt_ids)

            def mask(self, logits: Any) -> Any:
                return _keep(logits, enforcer.get_allowed_tokens(self.sequence).allowed_tokens)

            def advance(self, token: int) -> None:
                self.sequence.append(token)

            def finished(self) -> bool:
                return list(enforcer.get_allowed_tokens(self.sequence).allowed_tokens) == [eos]

        return Steer()


class Outlines(Candidate):
    name = "outlines"

    def prepare(self, loaded: LoadedChatModel) -> None:
        import outlines
        from outlines.backends.outlines_core import OutlinesCoreBackend

        started = time.perf_counter()
        self.backend = OutlinesCoreBackend(outlines.from_transformers(loaded.model, loaded.tokenizer))
        self.prep_s = time.perf_counter() - started

    def constraint(self, schema: dict[str, Any]) -> Any:
        from outlines_core import Guide, Index
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(orjson.dumps(schema).decode(), "")  # compact: no whitespace
        guide = Guide(Index(regex, self.backend.vocabulary))

        class Steer:
            def start(self, prompt_ids: Sequence[int]) -> None:
                return None

            def mask(self, logits: Any) -> Any:
                return _keep(logits, guide.get_tokens())

            def advance(self, token: int) -> None:
                guide.advance(token_id=token, return_tokens=False)

            def finished(self) -> bool:
                return bool(guide.is_finished())

        return Steer()


class Xgrammar(Candidate):
    name = "xgrammar"

    def prepare(self, loaded: LoadedChatModel) -> None:
        import xgrammar

        started = time.perf_counter()
        info = xgrammar.TokenizerInfo.from_huggingface(loaded.tokenizer, vocab_size=loaded.vocab_size)
        self.compiler = xgrammar.GrammarCompiler(info)
        self.vocab_size = loaded.vocab_size
        self.prep_s = time.perf_counter() - started

    def constraint(self, schema: dict[str, Any]) -> Any:
        import xgrammar

        compiled = self.compiler.compile_json_schema(orjson.dumps(schema).decode(), any_whitespace=False)
        matcher = xgrammar.GrammarMatcher(compiled, terminate_without_stop_token=True)
        bitmask = xgrammar.allocate_token_bitmask(1, self.vocab_size)

        class Steer:
            def start(self, prompt_ids: Sequence[int]) -> None:
                return None

            def mask(self, logits: Any) -> Any:
                matcher.fill_next_token_bitmask(bitmask)
                batch = logits.unsqueeze(0).clone()
                xgrammar.apply_token_bitmask_inplace(batch, bitmask, backend="cpu")
                return batch[0]

            def advance(self, token: int) -> None:
                matcher.accept_token(token)

            def finished(self) -> bool:
                return bool(matcher.is_terminated())

        return Steer()


MODULES = {"lm-format-enforcer": "lmformatenforcer", "outlines": "outlines", "xgrammar": "xgrammar"}
CLASSES: dict[str, Callable[[], Candidate]] = {
    "lm-format-enforcer": LmFormatEnforcer,
    "outlines": Outlines,
    "xgrammar": Xgrammar,
    "llguidance": Llguidance,
}


# -- footprint -----------------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist_name: str) -> list[str]:
    try:
        requires = metadata.requires(dist_name) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        marker_ok = True
        if ";" in requirement:
            from packaging.markers import Marker

            marker_ok = Marker(requirement.split(";", 1)[1]).evaluate()
        if marker_ok:
            names.append(_norm(re.split(r"[\s<>=!~\[;(]", requirement, maxsplit=1)[0]))
    return names


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [_norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo.extend(_requirements(name))
    return seen


def footprint_mb(candidate: str) -> float:
    """MB on disk of the candidate and of what it adds beyond this project's own dependencies."""
    candidates = {_norm(c) for c in CANDIDATES}
    project = [r for r in _requirements("holocron") if r not in candidates]
    base = _closure(project) | {"holocron"}
    added = _closure([candidate]) - base
    total = 0
    for name in added:
        for file in metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def installed(candidate: str) -> str | None:
    try:
        return metadata.version(candidate)
    except metadata.PackageNotFoundError:
        return None


def replay_ns(loaded: LoadedChatModel, prompt: Sequence[int], tokens: Sequence[int], threads: int) -> int:
    """Decoding time of exactly these answer tokens without any constraint: the same forward passes (one per
    token after the first) and the same argmax, so that the difference is the library's cost alone."""
    import torch

    with loaded.lock, torch.inference_mode():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            output = loaded.model(input_ids=torch.tensor([list(prompt)]), use_cache=True, logits_to_keep=1)
            began = time.perf_counter_ns()
            for step, token in enumerate(tokens):
                int(torch.argmax(output.logits[0, -1].float()))
                if step == len(tokens) - 1:
                    break
                output = loaded.model(input_ids=torch.tensor([[token]]), cache=output.cache, use_cache=True)
            return time.perf_counter_ns() - began
        finally:
            torch.set_num_threads(previous)


# -- the run -----------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    candidate: Candidate
    version: str
    valid: int = 0
    answers: int = 0
    tokens: int = 0
    eval_ns: int = 0
    replay_ns: int = 0
    mask_ns: int = 0
    compile_ms: list[float] = field(default_factory=list)
    failed: str | None = None
    samples: list[str] = field(default_factory=list)

    def ms_per_token(self) -> float:
        return self.eval_ns / max(1, self.tokens) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads while decoding (default 1)")
    parser.add_argument("--num-predict", type=int, default=48, help="token budget per answer")
    parser.add_argument("--cache-dir", type=Path, default=None, help="the chat model's weights cache")
    parser.add_argument("--show", action="store_true", help="print every answer")
    args = parser.parse_args(argv)

    provider = LocalChatModel(cache_dir=args.cache_dir, threads=args.threads)
    started = time.perf_counter()
    loaded = provider.loaded
    print(
        f"model {provider.model_name} ({provider.info.quantization} GGUF, digest {provider.digest[:19]}), "
        f"loaded from {loaded.source} in {time.perf_counter() - started:.1f}s; torch threads {args.threads}",
        flush=True,
    )
    schema = Review.model_json_schema()
    options = ChatOptions(num_predict=args.num_predict)
    tallies = [Tally(NoConstraint(), "-")]
    for name in CANDIDATES:
        version = installed(name)
        if version is None:
            print(f"{name}: not installed", flush=True)
            continue
        tally = Tally(CLASSES[name](), version)
        try:
            tally.candidate.prepare(loaded)
        except Exception as exc:  # a candidate that fails here is reported, not fatal
            tally.failed = f"{type(exc).__name__}: {exc}"[:120]
        tallies.append(tally)

    prompts = [
        loaded.tokenizer.apply_chat_template(
            as_messages([{"role": "system", "content": SYSTEM}, {"role": "user", "content": review}]),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
        for review in REVIEWS
    ]
    decode(loaded, prompts[0], ChatOptions(num_predict=4), threads=args.threads)  # warm-up
    for number, prompt in enumerate(prompts, 1):
        for tally in tallies:
            if tally.failed:
                continue
            try:
                compiling = time.perf_counter()
                constraint = tally.candidate.constraint(schema)
                if constraint is not None:
                    tally.compile_ms.append((time.perf_counter() - compiling) * 1000)
                run = decode(loaded, prompt, options, constraint=constraint, threads=args.threads)
            except Exception as exc:
                tally.failed = f"{type(exc).__name__}: {exc}"[:120]
                continue
            tally.answers += 1
            tally.tokens += run.eval_tokens
            tally.eval_ns += run.eval_ns
            tally.mask_ns += run.constraint_ns
            if constraint is not None and run.token_ids:
                tally.replay_ns += replay_ns(loaded, prompt, run.token_ids, args.threads)
            try:
                Review.model_validate_json(run.text)
                tally.valid += 1
            except ValidationError:
                pass
            tally.samples.append(run.text)
        print(f"prompt {number}/{len(prompts)} done", file=sys.stderr, flush=True)

    header = (
        f"{'library':<20} {'version':<8} {'valid':>6} {'tok/s':>6} {'ms/tok':>7} {'overhead':>9} {'mask':>7} "
        f"{'prep s':>7} {'compile':>8} {'footprint':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for tally in tallies:
        name = tally.candidate.name
        if tally.failed and not tally.answers:
            print(f"{name:<20} {tally.version:<8} failed: {tally.failed}")
            continue
        per_token = tally.ms_per_token()
        rate = 1000 / per_token if per_token else 0.0
        extra_ms = (tally.eval_ns - tally.replay_ns) / max(1, tally.tokens) / 1e6
        overhead = "-" if name == "none" else f"{extra_ms:+.1f} ms"
        mask = "-" if name == "none" else f"{tally.mask_ns / max(1, tally.tokens) / 1e6:.2f} ms"
        prep = "-" if name == "none" else f"{tally.candidate.prep_s:.2f}"
        compile_ms = f"{statistics.mean(tally.compile_ms):.0f} ms" if tally.compile_ms else "-"
        size = "-" if name == "none" else f"{footprint_mb(name):.1f} MB"
        print(
            f"{name:<20} {tally.version:<8} {tally.valid:>3}/{tally.answers:<2} {rate:>6.1f} {per_token:>7.1f} "
            f"{overhead:>9} {mask:>7} {prep:>7} {compile_ms:>8} {size:>10}"
        )
        if tally.failed:
            print(f"{'':<20} then failed: {tally.failed}")
    print(f"\n{len(REVIEWS)} prompts, greedy, num_predict {args.num_predict}; tokens counted are answer tokens")
    if args.show:
        for tally in tallies:
            print(f"\n[{tally.candidate.name}]")
            for sample in tally.samples:
                print(f"  {sample!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
