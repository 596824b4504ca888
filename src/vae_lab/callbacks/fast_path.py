"""The per-machine choice of how the networks run, like cuDNN's benchmark mode: measured once, cached, recorded.

Candidate paths compute the same model in other kernels (e.g. `Decoder.stride2`: oneDNN's transposed convolutions
or the phase GEMMs). At fit start `callbacks.runtime` times a few training steps of each, alternating, and keeps
the fastest only if it beats today's path (always a candidate) by `MARGIN`; in fp32 a candidate must also give
bit-identical loss and gradients, so the default run's numbers never change with the machine. The answer is cached
in `~/.cache/vae_lab/fast_paths.json` (or `$VAE_LAB_CACHE_DIR`) under the CPU model and flags, the torch version,
threads, precision and model shape, so later runs on the same machine skip the trial.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vae_lab.atomic_files import atomic_write_text

MARGIN = 0.05  # a candidate must be >= 5% faster than today's path: less is timing noise on a shared machine
ROUNDS = 3


@dataclass
class Choice:
    path: str
    cached: bool
    seconds_per_step: dict[str, float] = field(default_factory=dict)  # median of the trial, per candidate
    excluded: dict[str, str] = field(default_factory=dict)  # candidate -> why it was not timed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_file() -> Path:
    root = Path(os.environ.get("VAE_LAB_CACHE_DIR") or Path.home() / ".cache" / "vae_lab")
    return root / "fast_paths.json"


def cpu_identity() -> str:
    """'model name | the SIMD flags that pick kernels' from /proc/cpuinfo ('?' elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "?"
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    simd = sorted(f for f in flags if f.startswith(("avx", "amx")))
    return f"{model} | {' '.join(simd)}"


def machine_key(**shape: Any) -> str:
    import torch

    return json.dumps({"cpu": cpu_identity(), "torch": torch.__version__, **shape}, sort_keys=True)


def read_cache(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def choose(candidates: Sequence[str], time_step: Callable[[str], float], key: str, cache: Path | None,
           rounds: int = ROUNDS, margin: float = MARGIN) -> Choice:
    """The fastest of `candidates` (the first one is today's path) by the median of `rounds` alternating calls of
    `time_step(name)` (seconds per step); today's path unless another is `margin` faster. Cached under `key`."""
    default = candidates[0]
    known = read_cache(cache).get(key) if cache is not None else None
    if known in candidates:
        return Choice(known, cached=True)
    if len(candidates) == 1:
        return Choice(default, cached=False)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name in candidates:
            samples[name].append(time_step(name))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    best = min(medians, key=medians.__getitem__)
    path = best if medians[best] < medians[default] * (1 - margin) else default
    if cache is not None:
        with_choice = {**read_cache(cache), key: path}  # atomic_write_text makes the cache folder if needed
        atomic_write_text(cache, json.dumps(with_choice, indent=1, sort_keys=True) + "\n")
    return Choice(path, cached=False, seconds_per_step=medians)


def timed(step: Callable[[], None], steps: int) -> float:
    """Seconds per call of `step`, over `steps` calls after one untimed call."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps
