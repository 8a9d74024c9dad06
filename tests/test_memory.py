"""Freed activations go back to the system once a model is loaded (holocron.memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# What a forward pass does to the heap: large temporaries freed between small allocations that outlive them.
# Once glibc has raised its dynamic mmap threshold, the temporaries come from the heap and their holes stay.
PATTERN = """
import sys
import numpy as np
if sys.argv[1] == "fixed":
    from holocron.memory import return_large_frees_to_os
    assert return_large_frees_to_os()
elif sys.argv[1] == "model":
    from holocron.embedding.local import LocalProvider
    LocalProvider().model
def resident_mib():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20
first = np.ones(16 << 20, dtype=np.uint8)
del first  # freeing a 16 MiB mapping raises glibc's dynamic threshold past 4 MiB
before = resident_mib()
activations, survivors = [], []
for _ in range(40):
    activations.append(np.ones(4 << 20, dtype=np.uint8))
    survivors.append(np.ones(64 << 10, dtype=np.uint8))
del activations
print(resident_mib() - before)
"""


def retained_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PATTERN, mode], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def test_freed_activations_leave_the_process_with_the_threshold_fixed() -> None:
    default, fixed = retained_mib("default"), retained_mib("fixed")
    assert default > 100, f"the pattern should strand the 160 MiB of activations in the heap, kept {default:.1f}"
    assert fixed < 20, f"with the threshold fixed, freed activations should be unmapped, kept {fixed:.1f}"


@pytest.mark.model
def test_loading_the_local_model_fixes_the_threshold() -> None:
    assert retained_mib("model") < 20
