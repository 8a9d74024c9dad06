"""How long the command line takes to answer from a cold process: help, a listing, a search.

Run by hand (a search needs an indexed home; `make demo` builds one in .holocron/demo):

    .venv/bin/python bench/cli_start.py
    .venv/bin/python bench/cli_start.py --home .holocron/demo --runs 5

Each command runs ``--runs`` times in a new process; the median and the fastest wall-clock seconds are printed
beside the targets (help and listings at most 0.4 s, a search at most 1.5 s). The search runs twice: with the
query encoder exported to ONNX (what an index run prepares) and with torch, as every search ran before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
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
    rows: list[tuple[str, list[str], float, dict[str, str]]] = [
        ("holocron --help", [HOLOCRON, "--help"], 0.4, {}),
        ("holocron search --help", [HOLOCRON, "search", "--help"], 0.4, {}),
        ("holocron --version", [HOLOCRON, "--version"], 0.4, {}),
    ]
    if (args.home / "holocron.db").exists():
        rows += [
            ("holocron sources list", [HOLOCRON, *home, "sources", "list"], 0.4, {}),
            ("holocron spaces list", [HOLOCRON, *home, "spaces", "list"], 0.4, {}),
            ("search, ONNX query encoder", question, 1.5, {"HOLOCRON_LOCAL_QUERY_BACKEND": "onnx"}),
            ("search, torch (before)", question, 1.5, {"HOLOCRON_LOCAL_QUERY_BACKEND": "torch"}),
        ]
    else:
        print(f"no indexed home at {args.home}: listings and search left out (run `make demo` first)")
    print(f"wall-clock seconds, {args.runs} cold processes each; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'command':<28}{'median':>8}{'best':>8}{'target':>8}  met  exit")
    for name, argv, target, extra_env in rows:
        median, best, code = wall(argv, args.runs, extra_env)
        met = "yes" if median <= target else "no"
        print(f"{name:<28}{median:>8.2f}{best:>8.2f}{target:>8.1f}  {met:<4} {code}")


if __name__ == "__main__":
    main()
