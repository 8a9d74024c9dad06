"""The LLM runtime against the bare local chat model, in process and over HTTP, on the demo pages.

Run by hand (it loads the real chat and embedding models; a few minutes on 2 CPU cores):

    .venv/bin/python bench/llm.py                 # the first 4 demo pages, 2 rounds
    .venv/bin/python bench/llm.py --pages 2
    .venv/bin/python bench/llm.py --pages 13 --rounds 3 --threads 0   # torch's own thread count

The pages are those ``make demo`` ingests (``examples/corpus``), taken in turn from each of its folders
(mediawiki-api, openalex, wiki-html) and copied to a temporary folder. A Holocron on a temporary SQLite home
ingests and indexes them and ``page_classification`` is queued for every source; a worker on the ``llm`` lane
answers with the bundled SmolLM2-135M (:class:`holocron.chat.local.LocalChatModel`) in this process, one job at a
time, and right after each job its very request (the run's ``request_json`` artifact: messages, schema, options)
is answered again by the other paths, bare and HTTP taking turns going first, so that drift in the machine's load
lands on all of them alike. Settings make decoding greedy (temperature 0): every path writes the same tokens.
Every page is asked ``--rounds`` times (default 2) and each path's fastest time per page is kept. The model runs
on one torch thread by default (``--threads``), as the tests run it: decoding one token at a time gains little
from more, and on a busy machine more make it far slower and the figures far noisier.
Printed side by side:

1. Runner: per job, from the run's ``metrics_json``, seconds inside the model (``model_seconds``) and outside it
   (``outside_model_seconds``: evidence, prompt, validation, artifacts, the database). Target: outside at most 5%
   of the model's time.
2. Bare: the same request answered by ``LocalChatModel.chat`` directly. Target: the runner's wall time per job
   (model + outside) at most 1.10x bare.
3. HTTP: the same request through ``serve-models`` (:func:`holocron.embedding.server.create_app` with the chat
   model, under uvicorn in a thread on 127.0.0.1) with :class:`holocron.chat.ollama.OllamaChatProvider`.
   Target: at most 1.10x the in-process call. CPU seconds of this process (all threads: worker, server, model)
   are shown beside the wall clock; on a machine shared with other work they are the steadier figure.
4. Constrained decoding: answers that validate under the interrogation's pydantic model on the first attempt,
   with the schema (constrained) and without it (``schema=None``: free text, same prompt and options), once per
   page. Target: all, constrained.
5. Load: cold (the GGUF de-quantised into a fresh, empty cache folder) and cached (read back from that folder;
   the process's memo of loaded models is bypassed, else a second ``LocalChatModel`` costs nothing, as its row
   shows). Target: cached under 10 s. torch and transformers are imported before either is timed (their import
   time is shown apart). Everything after the cold load reuses its cache folder.

Before any timing the model is warmed up (the constraint library's one-time preparation for the tokenizer, and a
prompt as long as a page's), so that no path pays it. Seconds are wall-clock unless labelled CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from holocron.chat.base import ChatOptions, ChatResult
from holocron.chat.local import LocalChatModel

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "corpus"  # what the Makefile's demo target ingests
INTERROGATION = "page_classification"
OUTSIDE_TARGET = 0.05
RATIO_TARGET = 1.10
CACHED_LOAD_TARGET_S = 10.0


# -- helpers ---------------------------------------------------------------------------------------------------


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    print(f"\n{title}")
    print(line(cells[0]))
    print("-" * len(line(cells[0])))
    for row in cells[1:]:
        print(line(row))


def demo_pages(count: int) -> list[Path]:
    """The first ``count`` demo files, taken in turn from each folder of the corpus."""
    folders = [sorted(p for p in folder.rglob("*") if p.is_file()) for folder in sorted(DEMO.iterdir())]
    chosen: list[Path] = []
    while len(chosen) < count and any(folders):
        for files in folders:
            if files and len(chosen) < count:
                chosen.append(files.pop(0))
    return chosen


def options_of(stored: dict[str, Any]) -> ChatOptions:
    """``ChatOptions`` back from a ``request_json`` artifact (JSON made the ``stop`` tuple a list)."""
    known = {f.name for f in fields(ChatOptions)}
    values = {key: value for key, value in stored.items() if key in known}
    values["stop"] = tuple(values.get("stop") or ())
    return ChatOptions(**values)


def valid(output: type[BaseModel], text: str | None) -> bool:
    if text is None:
        return False
    try:
        output.model_validate_json(text)
    except ValidationError:
        return False
    return True


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def yes_no(met: bool) -> str:
    return "yes" if met else "no"


class UvicornThread:
    """An ASGI app served by uvicorn on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=60)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 180
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise SystemExit("the model server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


# -- the measurements ------------------------------------------------------------------------------------------


@dataclass
class Loads:
    imports_s: float
    cold_s: float
    cold_source: str
    cached_s: float
    cached_source: str
    reused_s: float


def measure_loads(cache: Path, threads: int | None) -> tuple[Loads, LocalChatModel]:
    """Cold into the empty ``cache``, then cached from it; the model returned is loaded (from the cache)."""
    from holocron.chat.local import load_chat_model

    started = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    imports_s = time.perf_counter() - started

    cold = LocalChatModel(cache_dir=cache, threads=threads)
    cold_s = cold.load() / 1e9
    # A second LocalChatModel in this process would take the model from the process's memo (no load at all):
    # bypass it, so that the figure is a read of the cache folder, as a fresh process does.
    started = time.perf_counter()
    loaded = load_chat_model(cold.gguf_path, cache, reuse=False)
    cached_s = time.perf_counter() - started
    model = LocalChatModel(cache_dir=cache, threads=threads)
    reused_s = model.load() / 1e9  # the memo now holds the cached load
    return Loads(imports_s, cold_s, cold.loaded.source, cached_s, loaded.source, reused_s), model


@dataclass
class Call:
    """One path's fastest call for one prompt over the rounds (wall and CPU seconds kept apart)."""

    wall_s: float = float("inf")
    cpu_s: float = float("inf")
    result: ChatResult | None = None
    errors: list[str] = field(default_factory=list)

    def add(self, wall_s: float, cpu_s: float, result: ChatResult | None, error: str | None) -> None:
        if error is not None:
            self.errors.append(error)
            return
        if self.result is None:
            self.result = result  # greedy: every round writes the same answer
        self.wall_s = min(self.wall_s, wall_s)
        self.cpu_s = min(self.cpu_s, cpu_s)


def timed(call: Callable[[], ChatResult]) -> tuple[float, float, ChatResult | None, str | None]:
    """(wall s, CPU s of this process: every thread, the HTTP server's included, result, error)."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result: ChatResult | None = call()
        error = None
    except Exception as exc:  # a failed call is a figure too: reported, not fatal
        result, error = None, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - wall, time.process_time() - cpu, result, error


@dataclass
class Prompt:
    """One page's request as its first run sent it, and the fastest run's figures."""

    title: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    options: ChatOptions
    runner_text: str | None
    runs: int = 0
    model_s: float = float("inf")
    outside_s: float = 0.0
    prepare_s: float = 0.0
    load_s: float = 0.0
    worker_cpu_s: float = float("inf")
    valid_first: int = 0  # runs valid on their first attempt
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    bare: Call = field(default_factory=Call)
    http: Call = field(default_factory=Call)
    free: Call = field(default_factory=Call)

    @property
    def runner_s(self) -> float:
        return self.model_s + self.outside_s

    def add_run(self, metrics: dict[str, Any], worker_cpu_s: float) -> None:
        self.runs += 1
        self.valid_first += metrics.get("valid_on_attempt") == 1
        self.worker_cpu_s = min(self.worker_cpu_s, worker_cpu_s)
        model_s = float(metrics.get("model_seconds", 0.0))
        outside_s = float(metrics.get("outside_model_seconds", 0.0))
        if model_s + outside_s < self.runner_s:
            self.model_s, self.outside_s = model_s, outside_s
            self.prepare_s = float(metrics.get("prepare_seconds", 0.0))
            self.load_s = float(metrics.get("load_seconds", 0.0))
            self.eval_count = metrics.get("eval_count")
            self.prompt_eval_count = metrics.get("prompt_eval_count")


def prompt_of(holo: Any, run: dict[str, Any]) -> Prompt:
    artifacts = {a["artifact_type"]: a["content_json"] for a in holo.llm_artifacts(run["run_id"])}
    request = artifacts["request_json"]
    found = re.search(r"Page title: (.*)", "\n".join(m["content"] for m in request["messages"]))
    title = found.group(1).strip() if found else ""
    return Prompt(
        title=title or str(run["run_id"]),
        messages=request["messages"],
        schema=request["schema"],
        options=options_of(request["options"]),
        runner_text=artifacts.get("raw_response"),
    )


def run_one_job(holo: Any) -> tuple[int, float]:
    """A worker on the llm lane for one job: (jobs claimed, CPU seconds of this process meanwhile)."""
    from holocron.jobs.worker import Worker, WorkerOptions

    cpu = time.process_time()
    options = WorkerOptions(worker_id="bench", drain=True, max_jobs=1)
    report = Worker(holo, options, lanes=[holo.llm_lane()]).run()
    return report.claimed, time.process_time() - cpu


def measure(holo: Any, model: LocalChatModel, http: Any, rounds: int) -> list[Prompt]:
    """Each round: every page asked through the worker, one job at a time, and right after each job its request
    answered bare and over HTTP (taking turns going first), and in the first round once more unconstrained."""
    prompts: dict[str, Prompt] = {}
    seen: set[str] = set()
    turn = 0
    for round_number in range(rounds):
        jobs = holo.llm_enqueue(INTERROGATION, all_sources=True)
        print(f"round {round_number + 1}/{rounds}: {len(jobs)} {INTERROGATION} jobs", flush=True)
        while True:
            claimed, worker_cpu_s = run_one_job(holo)
            if not claimed:
                break
            runs = holo.llm_runs(interrogation=INTERROGATION, limit=10_000).items
            for run in [r for r in runs if str(r["run_id"]) not in seen]:
                seen.add(str(run["run_id"]))
                key = str((run.get("input_json") or {}).get("source_id") or run["run_id"])
                p = prompts.get(key)
                if p is None:
                    p = prompts[key] = prompt_of(holo, run)
                p.add_run(run.get("metrics_json") or {}, worker_cpu_s)

                def bare(p: Prompt = p) -> ChatResult:
                    return model.chat(p.messages, schema=p.schema, options=p.options)

                def over_http(p: Prompt = p) -> ChatResult:
                    result: ChatResult = http.chat(p.messages, schema=p.schema, options=p.options)
                    return result

                def free(p: Prompt = p) -> ChatResult:
                    return model.chat(p.messages, schema=None, options=p.options)

                order = [(p.bare, bare), (p.http, over_http)]
                turn += 1
                for call, answer in order if turn % 2 else order[::-1]:
                    call.add(*timed(answer))
                if round_number == 0:
                    p.free.add(*timed(free))
                print(
                    f"  {p.title[:28]}: runner {p.model_s + p.outside_s:.1f} s, "
                    f"bare {p.bare.wall_s:.1f} s, HTTP {p.http.wall_s:.1f} s",
                    flush=True,
                )
    return list(prompts.values())


# -- main ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=4, help="demo pages to classify (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="times every page is asked per path (default 2)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the chat model (default 1; 0: torch's own)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args()
    if args.pages < 1 or args.rounds < 1:
        parser.error("--pages and --rounds must be at least 1")
    for switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(switch, "1")

    tmp = Path(tempfile.mkdtemp(prefix="holocron-bench-llm-"))
    try:
        run(args.pages, args.rounds, args.threads or None, tmp)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def warm_up(model: LocalChatModel, schema: dict[str, Any]) -> None:
    """The constraint library's one-time preparation for the tokenizer, and first forward passes of a prompt as
    long as a page's, so that no path pays them."""
    page = "Classify the page below by its primary subject.\n" + "The page tells of a place and its people. " * 80
    for text in ("Answer ok.", page):
        model.chat([{"role": "user", "content": text}], schema=schema, options=ChatOptions(num_predict=16))


def run(page_count: int, rounds: int, threads: int | None, tmp: Path) -> None:
    from holocron.chat.ollama import OllamaChatProvider
    from holocron.config import Settings
    from holocron.embedding.local import LocalProvider
    from holocron.embedding.server import create_app
    from holocron.service import Holocron

    cache = tmp / "models"  # fresh and empty: the cold load converts into it
    print("loading the chat model cold (de-quantising the GGUF), then cached ...", flush=True)
    loads, model = measure_loads(cache, threads)

    pages = tmp / "pages"
    chosen = demo_pages(page_count)
    for path in chosen:
        target = pages / path.relative_to(DEMO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    home = tmp / "home"
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'holocron.db'}",
        chat_provider="local",
        model_cache_dir=cache,
        chat_temperature=0.0,
    )
    holo = Holocron(settings, chat_provider=model)
    server: UvicornThread | None = None
    try:
        print(f"ingesting and indexing {len(chosen)} demo pages ...", flush=True)
        started = time.perf_counter()
        holo.ingest([pages])
        holo.index()
        ingest_s = time.perf_counter() - started
        interrogation = holo.interrogations.get(INTERROGATION)
        output: type[BaseModel] = interrogation.output

        provider = holo.provider
        if not isinstance(provider, LocalProvider):
            raise SystemExit(f"serve-models needs the local embedding provider, not {type(provider).__name__}")
        server = UvicornThread(create_app(provider, chat=model))
        http = OllamaChatProvider(model.model_name, server.url, timeout_s=600)
        warm_up(model, interrogation.schema())
        http.chat([{"role": "user", "content": "Answer ok."}], options=ChatOptions(num_predict=2))
        prompts = measure(holo, model, http, rounds)
        if not prompts:
            raise SystemExit("the worker made no runs")
    finally:
        if server is not None:
            server.stop()
        holo.close()
    report(prompts, output, loads, chosen, rounds, threads, ingest_s, model.model_name)


def report(
    prompts: Sequence[Prompt],
    output: type[BaseModel],
    loads: Loads,
    chosen: Sequence[Path],
    rounds: int,
    threads: int | None,
    ingest_s: float,
    model_name: str,
) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{len(chosen)} demo pages from {DEMO.relative_to(ROOT)} ({', '.join(p.name for p in chosen)}); "
        f"{sum(p.runs for p in prompts)} {INTERROGATION} runs over {rounds} round(s), fastest kept per page and path; "
        f"{model_name}, greedy, torch threads {threads or 'default'}; {os.cpu_count()} CPUs, load {load}; "
        f"ingest + index {ingest_s:.1f} s"
    )

    # 1. runner: inside and outside the model
    rows: list[list[object]] = []
    for p in prompts:
        rows.append(
            [
                p.title[:28],
                p.prompt_eval_count if p.prompt_eval_count is not None else "-",
                p.eval_count if p.eval_count is not None else "-",
                f"{p.model_s:.2f}",
                f"{p.outside_s:.3f}",
                f"{p.prepare_s:.3f}",
                f"{p.load_s:.3f}",
                f"{100 * ratio(p.outside_s, p.model_s):.2f}",
            ]
        )
    model_total = sum(p.model_s for p in prompts)
    outside_total = sum(p.outside_s for p in prompts)
    outside_pct = 100 * ratio(outside_total, model_total)
    rows.append(["total", "", "", f"{model_total:.2f}", f"{outside_total:.3f}", "", "", f"{outside_pct:.2f}"])
    table(
        "1. runner (worker, in process): seconds per job, from metrics_json",
        ["page", "prompt tok", "answer tok", "model s", "outside s", "prepare s", "load s", "outside/model %"],
        rows,
    )

    # 2. and 3. bare and HTTP against the runner
    rows = []
    for p in prompts:
        texts = {p.runner_text, *(c.result.text if c.result else None for c in (p.bare, p.http))}
        rows.append(
            [
                p.title[:28],
                f"{p.runner_s:.2f}",
                f"{p.bare.wall_s:.2f}",
                f"{p.http.wall_s:.2f}",
                f"{ratio(p.runner_s, p.bare.wall_s):.3f}",
                f"{ratio(p.http.wall_s, p.bare.wall_s):.3f}",
                f"{p.worker_cpu_s:.2f}",
                f"{p.bare.cpu_s:.2f}",
                f"{p.http.cpu_s:.2f}",
                yes_no(len(texts) == 1),
            ]
        )
    runner_total = model_total + outside_total
    bare_total = sum(p.bare.wall_s for p in prompts)
    http_total = sum(p.http.wall_s for p in prompts)
    worker_cpu = sum(p.worker_cpu_s for p in prompts)
    bare_cpu = sum(p.bare.cpu_s for p in prompts)
    http_cpu = sum(p.http.cpu_s for p in prompts)
    runner_ratio = ratio(runner_total, bare_total)
    http_ratio = ratio(http_total, bare_total)
    rows.append(
        [
            "total",
            f"{runner_total:.2f}",
            f"{bare_total:.2f}",
            f"{http_total:.2f}",
            f"{runner_ratio:.3f}",
            f"{http_ratio:.3f}",
            f"{worker_cpu:.2f}",
            f"{bare_cpu:.2f}",
            f"{http_cpu:.2f}",
            "",
        ]
    )
    table(
        "2-3. the same requests: runner (model + outside) vs bare LocalChatModel.chat vs HTTP (Ollama API); "
        "wall s, and CPU s of this process (worker CPU: the whole Worker.run of the job)",
        [
            "page",
            "runner s",
            "bare s",
            "HTTP s",
            "runner/bare",
            "HTTP/bare",
            "worker CPU",
            "bare CPU",
            "HTTP CPU",
            "same",
        ],
        rows,
    )
    print(
        f"CPU ratios: worker/bare {ratio(worker_cpu, bare_cpu):.3f}x, HTTP/bare {ratio(http_cpu, bare_cpu):.3f}x; "
        "same: the runner, bare and HTTP wrote the same answer"
    )

    # 4. constrained decoding
    total = len(prompts)
    constrained_ok = sum(valid(output, p.bare.result.text if p.bare.result else None) for p in prompts)
    http_ok = sum(valid(output, p.http.result.text if p.http.result else None) for p in prompts)
    free_ok = sum(valid(output, p.free.result.text if p.free.result else None) for p in prompts)
    runner_ok = sum(p.valid_first for p in prompts)
    runs = sum(p.runs for p in prompts)
    table(
        "4. answers valid under the interrogation's pydantic model on the first attempt",
        ["decoding", "valid / total", "answer s"],
        [
            ["constrained (schema), bare", f"{constrained_ok} / {total}", f"{bare_total:.2f}"],
            ["constrained (schema), HTTP", f"{http_ok} / {total}", f"{http_total:.2f}"],
            ["constrained (schema), runner runs", f"{runner_ok} / {runs}", f"{model_total:.2f}"],
            ["unconstrained (schema=None), bare", f"{free_ok} / {total}", f"{sum(p.free.wall_s for p in prompts):.2f}"],
        ],
    )
    for p in prompts:
        if p.free.result is not None and not valid(output, p.free.result.text):
            print(f"  unconstrained, {p.title[:28]}: {p.free.result.text[:80]!r}")
        for path, call in (("bare", p.bare), ("HTTP", p.http), ("unconstrained", p.free)):
            for error in call.errors:
                print(f"  error, {path}, {p.title[:28]}: {error[:160]}")

    # 5. load
    table(
        "5. chat model load, seconds",
        ["load", "from", "seconds"],
        [
            ["import torch + transformers (before both)", "-", f"{loads.imports_s:.2f}"],
            ["cold: fresh empty cache folder", loads.cold_source, f"{loads.cold_s:.2f}"],
            ["cached: the same folder, read again", loads.cached_source, f"{loads.cached_s:.2f}"],
            ["second LocalChatModel in this process", "memory", f"{loads.reused_s:.3f}"],
        ],
    )

    table(
        "targets",
        ["figure", "target", "measured", "met"],
        [
            [
                "runner outside/model time",
                f"<= {100 * OUTSIDE_TARGET:.0f}%",
                f"{outside_pct:.2f}%",
                yes_no(outside_pct <= 100 * OUTSIDE_TARGET),
            ],
            [
                "runner wall per job / bare generate",
                f"<= {RATIO_TARGET:.2f}x",
                f"{runner_ratio:.3f}x",
                yes_no(runner_ratio <= RATIO_TARGET),
            ],
            [
                "HTTP / in-process generate",
                f"<= {RATIO_TARGET:.2f}x",
                f"{http_ratio:.3f}x",
                yes_no(http_ratio <= RATIO_TARGET),
            ],
            [
                "constrained valid on first attempt",
                f"{total} / {total}",
                f"{constrained_ok} / {total} (unconstrained {free_ok} / {total})",
                yes_no(constrained_ok == total),
            ],
            [
                "cached model load",
                f"< {CACHED_LOAD_TARGET_S:.0f} s",
                f"{loads.cached_s:.2f} s (cold {loads.cold_s:.2f} s)",
                yes_no(loads.cached_s < CACHED_LOAD_TARGET_S),
            ],
        ],
    )


if __name__ == "__main__":
    main()
