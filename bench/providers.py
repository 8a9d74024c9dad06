"""Embedding throughput through each provider against the bare model encode, side by side.

Run by hand (it loads the real model and starts `holocron serve-embeddings` on 127.0.0.1):

    .venv/bin/python bench/providers.py                 # server in its own process, 3 rounds
    .venv/bin/python bench/providers.py --in-process    # server in a thread of this process
    .venv/bin/python bench/providers.py --rounds 5

The chunks are the sample corpus's wiki pages (``shared/data/wiki-html``) and the OpenAlex work
(``shared/data/openalex/papers__work.json``), extracted and chunked as the indexer does for this model
(``ChunkPolicy.fitted_to_model(256)``). Every provider embeds the same chunks in the same batches of 64 (as
``holocron index`` calls it); "bare" is ``SentenceTransformer.encode`` on those batches in this process. The ratio
is a provider's time over the bare time: for the HTTP providers it is the whole HTTP overhead (serialisation,
transfer, parsing, the server's token count). Providers take turns batch by batch, and each batch's fastest
time over the rounds is kept, so that other work on the machine disturbs the comparison as little as possible.
CPU seconds (this process plus the server's process) are reported beside the wall clock: on a machine shared
with other work they measure the work each path does far more steadily. Target: through ``serve-embeddings`` on
the same machine, at most 1.10x the bare encode time.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BATCH = 64


def corpus_chunks() -> list[str]:
    from holocron.chunking import ChunkPolicy, chunk_text
    from holocron.extract import extract

    policy = ChunkPolicy.fitted_to_model(256)
    documents: list[tuple[str, Path]] = [
        ("html", path)
        for path in sorted((SHARED / "wiki-html").glob("*.html"))
        if not path.name.endswith("__expected.html")
    ]
    documents.append(("openalex", SHARED / "openalex" / "papers__work.json"))
    chunks: list[str] = []
    for source_type, path in documents:
        document = extract(source_type, path.read_text(encoding="utf-8"), origin=str(path))
        chunks.extend(span.text for span in chunk_text(document.text, policy).spans)
    return chunks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(in_process: bool, local: Any) -> tuple[str, Callable[[], None], int | None]:
    """serve-embeddings on 127.0.0.1: (base URL, stop, server process id when it runs in its own process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pid: int | None = None
    if in_process:
        import threading

        import uvicorn

        from holocron.embedding.server import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(local), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop_thread() -> None:
            server.should_exit = True
            thread.join(10)

        stop = stop_thread
    else:
        command = [
            sys.executable,
            "-c",
            "from holocron.cli.app import main; main()",
            "serve-embeddings",
            "--port",
            str(port),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = process.pid

        def stop_process() -> None:
            process.terminate()
            process.wait(10)

        stop = stop_process
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/version", timeout=1).status_code == 200:
                return url, stop, pid
        except httpx.TransportError:
            time.sleep(0.2)
    stop()
    raise SystemExit("serve-embeddings did not start")


class Clock:
    """Wall time, and CPU time of this process plus the server's process (if separate) around one call."""

    def __init__(self, server_pid: int | None) -> None:
        import psutil

        self.server = psutil.Process(server_pid) if server_pid else None

    def _cpu(self) -> float:
        cpu = time.process_time()
        if self.server is not None:
            times = self.server.cpu_times()
            cpu += times.user + times.system
        return cpu

    def measure(self, run: Callable[[list[str]], Any], batch: list[str]) -> tuple[float, float]:
        cpu, wall = self._cpu(), time.perf_counter()
        run(batch)
        return time.perf_counter() - wall, self._cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="run the server in a thread of this process")
    args = parser.parse_args()

    from holocron.embedding.local import LocalProvider
    from holocron.embedding.ollama import OllamaProvider
    from holocron.embedding.openai import OpenAIProvider

    chunks = corpus_chunks()
    batches = [chunks[i : i + BATCH] for i in range(0, len(chunks), BATCH)]
    local = LocalProvider(batch_size=BATCH)
    model = local.model
    url, stop, server_pid = start_server(args.in_process, local)
    clock = Clock(server_pid)
    try:
        runners: dict[str, Callable[[list[str]], Any]] = {
            "bare encode": lambda batch: model.encode(
                batch, batch_size=BATCH, convert_to_numpy=True, show_progress_bar=False
            ),
            "local": local.embed,
            "ollama (serve-embeddings)": OllamaProvider(local.model_name, url, batch_size=BATCH).embed,
            "openai float (serve-embeddings)": OpenAIProvider(
                local.model_name, f"{url}/v1", encoding_format="float", batch_size=BATCH
            ).embed,
            "openai base64 (serve-embeddings)": OpenAIProvider(
                local.model_name, f"{url}/v1", encoding_format="base64", batch_size=BATCH
            ).embed,
        }
        for run in runners.values():  # load, connect and warm up before any timing
            run(batches[0][:8])
        names = list(runners)
        # Per (provider, batch): the fastest of the rounds. Other work on the machine only ever adds time, so the
        # minimum is the best estimate of each call's own cost; providers take turns batch by batch, so a burst of
        # outside load lands on all of them alike. CPU seconds (this process and the server's) are summed the same
        # way: on a busy machine they measure the work done far more steadily than the wall clock does.
        wall = {name: [float("inf")] * len(batches) for name in names}
        cpu = {name: [float("inf")] * len(batches) for name in names}
        for round_number in range(args.rounds):
            for index, batch in enumerate(batches):
                shift = (round_number + index) % len(names)
                for name in names[shift:] + names[:shift]:
                    seconds, cpu_seconds = clock.measure(runners[name], batch)
                    wall[name][index] = min(wall[name][index], seconds)
                    cpu[name][index] = min(cpu[name][index], cpu_seconds)
    finally:
        stop()

    total = {name: sum(times) for name, times in wall.items()}
    total_cpu = {name: sum(times) for name, times in cpu.items()}
    bare, bare_cpu = total["bare encode"], total_cpu["bare encode"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{len(chunks)} chunks from {SHARED} (wiki-html + OpenAlex work), batches of {BATCH}, "
        f"fastest of {args.rounds} rounds per batch, "
        f"server {'in process' if args.in_process else 'in its own process'}, {os.cpu_count()} CPUs, load {load}"
    )
    header = f"{'provider':34} {'chunks':>7} {'seconds':>8} {'chunks/s':>9} {'ratio':>6} {'CPU s':>7} {'CPU ratio':>9}"
    print(header)
    print("-" * len(header))
    for name in names:
        print(
            f"{name:34} {len(chunks):>7} {total[name]:>8.2f} {len(chunks) / total[name]:>9.1f} "
            f"{total[name] / bare:>6.3f} {total_cpu[name]:>7.2f} {total_cpu[name] / bare_cpu:>9.3f}"
        )
    http = [name for name in names if "serve-embeddings" in name]
    worst = max(total[name] / bare for name in http)
    worst_cpu = max(total_cpu[name] / bare_cpu for name in http)
    print(
        f"\nthrough serve-embeddings: at most {worst:.3f}x the bare encode's wall time and {worst_cpu:.3f}x its CPU "
        f"time (target <= 1.10x: {'met' if worst <= 1.10 else 'not met'} on wall time, "
        f"{'met' if worst_cpu <= 1.10 else 'not met'} on CPU time)"
    )


if __name__ == "__main__":
    main()
