"""How long the command line takes to answer from a cold process: help, a listing, a search.

Run by hand (a search needs an indexed home; `make demo` builds one in .holocron/demo):

    .venv/bin/python bench/cli_start.py
    .venv/bin/python bench/cli_start.py --home .holocron/demo --runs 5

Each command runs ``--runs`` times in a new process; the median and the fastest wall-clock seconds are printed
beside the targets (help and listings at most 0.4 s, a search at most 1.5 s). The search runs three ways: in
process with the query encoder exported to ONNX (what an index run prepares), in process with torch (as every
search ran before), and through a `holocron serve` started by this script on the same home (what a search does
when one is up). With the server up, the warm API search's p50 over 200 requests is printed too.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOLOCRON = str(Path(sys.executable).parent / "holocron")


def wall(argv: list[str], runs: int, extra_env: dict[str, str]) -> tuple[float, float, int]:
    seconds: list[float] = []
    code = 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra_env}
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run(argv, capture_output=True, env=env, check=False).returncode
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), min(seconds), code


@contextmanager
def serving(home: Path) -> Iterator[str]:
    """``holocron serve`` on a free port for ``home``, warmed by one search; its URL."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [HOLOCRON, "--home", str(home), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.post(f"{url}/api/search", json={"query": "warm up", "log": False}, timeout=60).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("holocron serve did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def api_p50_ms(url: str, question: str, n: int = 200) -> float:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            client.post("/api/search", json={"query": question, "log": False}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / ".holocron" / "demo")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--model-cache", type=Path, default=ROOT / ".holocron" / "models", help="where `make demo` keeps the export"
    )
    args = parser.parse_args()
    home = ["--home", str(args.home)]
    os.environ.setdefault("HOLOCRON_MODEL_CACHE_DIR", str(args.model_cache))
    question = [HOLOCRON, *home, "search", "What is the capital of New Zealand?"]
    in_process = {"HOLOCRON_SEARCH_VIA_SERVER": "false"}
    rows: list[tuple[str, list[str], float, dict[str, str]]] = [
        ("holocron --help", [HOLOCRON, "--help"], 0.4, {}),
        ("holocron search --help", [HOLOCRON, "search", "--help"], 0.4, {}),
        ("holocron --version", [HOLOCRON, "--version"], 0.4, {}),
    ]
    if (args.home / "holocron.db").exists():
        rows += [
            ("holocron sources list", [HOLOCRON, *home, "sources", "list"], 0.4, {}),
            ("holocron spaces list", [HOLOCRON, *home, "spaces", "list"], 0.4, {}),
            ("search, ONNX query encoder", question, 1.5, {**in_process, "HOLOCRON_LOCAL_QUERY_BACKEND": "onnx"}),
            ("search, torch (before)", question, 1.5, {**in_process, "HOLOCRON_LOCAL_QUERY_BACKEND": "torch"}),
        ]
    else:
        print(f"no indexed home at {args.home}: listings and search left out (run `make demo` first)")
    print(f"wall-clock seconds, {args.runs} cold processes each; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'command':<28}{'median':>8}{'best':>8}{'target':>8}  met  exit")
    for name, argv, target, extra_env in rows:
        report(name, *wall(argv, args.runs, extra_env), target)
    if (args.home / "holocron.db").exists():
        with serving(args.home) as url:
            report("search, via holocron serve", *wall(question, args.runs, {}), 1.5)
            p50 = api_p50_ms(url, question[-1])
        print(f"warm API search p50 {p50:.1f} ms over 200 requests (target 20 ms: {'met' if p50 <= 20 else 'not met'})")


def report(name: str, median: float, best: float, code: int, target: float) -> None:
    met = "yes" if median <= target else "no"
    print(f"{name:<28}{median:>8.2f}{best:>8.2f}{target:>8.1f}  {met:<4} {code}")


if __name__ == "__main__":
    main()
