"""Progress for long commands: a Rich bar with rate and ETA on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PLAIN_INTERVAL_S = 5.0


@dataclass
class Tracker:
    """What a command calls as work gets done; works the same with or without a terminal."""

    advance: Callable[[int], None]
    set_total: Callable[[int], None]


@contextmanager
def track(description: str, total: int | None, console: Console, *, unit: str = "items") -> Iterator[Tracker]:
    if console.is_terminal and not console.is_dumb_terminal:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task(description, total=total, rate="")
            started = time.perf_counter()

            def advance(n: int) -> None:
                progress.advance(task, n)
                done = progress.tasks[task].completed
                elapsed = max(time.perf_counter() - started, 1e-9)
                progress.update(task, rate=f"{done / elapsed:,.1f} {unit}/s")

            yield Tracker(advance, lambda n: progress.update(task, total=n))
        return
    state = {"done": 0, "total": total, "last": time.perf_counter(), "started": time.perf_counter()}

    def plain_advance(n: int) -> None:
        state["done"] = int(state["done"] or 0) + n
        now = time.perf_counter()
        if now - float(state["last"] or 0) >= PLAIN_INTERVAL_S:
            state["last"] = now
            _plain_line(description, state, unit)

    def plain_total(n: int) -> None:
        state["total"] = n

    yield Tracker(plain_advance, plain_total)
    if state["done"]:
        _plain_line(description, state, unit)


def _plain_line(description: str, state: dict[str, float | int | None], unit: str) -> None:
    done = int(state["done"] or 0)
    elapsed = max(time.perf_counter() - float(state["started"] or 0), 1e-9)
    rate = done / elapsed
    total = state["total"]
    if total:
        remaining = (int(total) - done) / rate if rate else 0.0
        line = f"{description}: {done}/{total} {unit} ({rate:,.1f}/s, eta {remaining:,.0f}s)"
    else:
        line = f"{description}: {done} {unit} ({rate:,.1f}/s)"
    print(line, file=sys.stderr, flush=True)
