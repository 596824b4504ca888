"""How the networks run, apart from what they compute: never a model hyperparameter (a checkpoint records what the
model is, not how it was run). Applied when the fit (or test) sets up:
  channels_last  NHWC 4-D weights (oneDNN's preferred layout on CPU, tensor cores' on GPU); inputs follow the weights.
  compile        torch.compile of the encoder and decoder, lazily at the first step; parameter names are unchanged.
  fast_path      on a CPU fit, the decoder's stride-2 kernels (`Decoder.stride2`: oneDNN or phase GEMMs) chosen like
                 cuDNN's benchmark mode: timed on this machine, cached per machine and shape, recorded in manifest.json
                 (README, "The per-machine fast path"). fp32 fits run no trial: only a path with today's exact numbers
                 may replace today's, and none does yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import lightning as L
import torch

from vae_lab.atomic_files import atomic_write_text
from vae_lab.errors import refuse

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
TRIAL_STEPS = 3  # timed steps per candidate per round (x ROUNDS rounds): ~1-3 s of a fit on a 2-core CPU
ROUNDS = 3
MARGIN = 0.05  # a candidate must be >= 5% faster than today's path: less is timing noise on a shared machine


class Runtime(L.Callback):
    def __init__(self, channels_last: bool = True, compile: CompileMode | None = None,
                 fast_path: bool = True) -> None:
        for key, value in (("channels_last", channels_last), ("fast_path", fast_path)):
            if not isinstance(value, bool):  # a bad value: one sentence naming the key
                raise refuse(f"callbacks.runtime.{key}", value, "true or false")
        if compile not in (None, *get_args(CompileMode)):
            raise refuse("callbacks.runtime.compile", compile, "null or one of " + ", ".join(get_args(CompileMode)))
        self.channels_last, self.compile, self.fast_path = channels_last, compile, fast_path
        self._applied = False

    def setup(self, trainer: L.Trainer | None, pl_module: L.LightningModule, stage: str) -> None:
        if self._applied:
            return
        self._applied = True
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.fast_path and stage == "fit" and trainer is not None and trainer.strategy.root_device.type == "cpu":
            batch = getattr(trainer.datamodule, "hparams", {}).get("batch_size", 100)
            choice = choose_decoder_path(pl_module, batch, str(trainer.precision),
                                         trainer.precision_plugin.forward_context)
            pl_module.fast_path = asdict(choice)  # recorded by callbacks.manifest
        if self.compile is not None:
            for network in (pl_module.encoder, pl_module.decoder):
                network.compile(mode=self.compile)


@dataclass
class Choice:
    path: str
    cached: bool
    seconds_per_step: dict[str, float] = field(default_factory=dict)  # median of the trial, per candidate
    excluded: dict[str, str] = field(default_factory=dict)  # candidate -> why it was not timed


def choose_decoder_path(model: Any, batch: int, precision: str, context: Any = contextlib.nullcontext) -> Choice:
    """Set `model.decoder.stride2` to the fastest of its paths on this machine (a no-op without the attribute)."""
    decoder = model.decoder
    if not hasattr(decoder, "stride2"):
        return Choice(path="none", cached=False)
    if not precision.startswith(("bf16", "16")):  # fp32 / fp64: only a path with today's exact numbers
        # The phase GEMMs sum the taps in another order (equal to ~1e-7, tests/test_networks.py), never bitwise:
        # known without running a step, so an fp32 fit pays nothing for the choice.
        decoder.stride2 = "onednn"
        return Choice("onednn", cached=False, excluded={"gemm": f"not bit-identical to onednn in {precision}"})
    candidates = ["onednn", "gemm"]
    x = (torch.rand(batch, *model.image_shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    x = x.to(memory_format=torch.channels_last)
    parameters = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(path: str) -> list[torch.Tensor]:
        decoder.stride2 = path
        with torch.random.fork_rng(devices=[]), context():  # the run's RNG stream is left as it was
            torch.manual_seed(0)
            loss = -model(x)[0].mean()
        return [loss.detach(), *torch.autograd.grad(loss, parameters)]

    key = machine_key(model=type(model).__name__, latent_dim=model.latent_dim, batch=batch, precision=precision,
                      threads=torch.get_num_threads(), candidates=candidates)
    cache = Path(os.environ.get("VAE_LAB_CACHE_DIR") or Path.home() / ".cache" / "vae_lab") / "fast_paths.json"
    choice = choose(candidates, lambda path: timed(lambda: loss_and_grads(path), TRIAL_STEPS), key, cache)
    decoder.stride2 = choice.path
    return choice


def machine_key(**shape: Any) -> str:
    """The cache key: the CPU model and the SIMD flags that pick kernels (from /proc/cpuinfo), torch, `shape`."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    cpu = f"{model} | {' '.join(sorted(f for f in flags if f.startswith(('avx', 'amx'))))}"
    return json.dumps({"cpu": cpu, "torch": torch.__version__, **shape}, sort_keys=True)


def read_cache(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def choose(candidates: Sequence[str], time_step: Callable[[str], float], key: str, cache: Path) -> Choice:
    """The fastest of `candidates` (the first one is today's path) by the median of `ROUNDS` alternating calls of
    `time_step(name)` (seconds per step); today's path unless another is `MARGIN` faster. Cached under `key`."""
    known = read_cache(cache).get(key)
    if known in candidates:
        return Choice(known, cached=True)
    rounds = [{name: time_step(name) for name in candidates} for _ in range(ROUNDS)]  # the candidates alternate
    medians = {name: statistics.median(seconds[name] for seconds in rounds) for name in candidates}
    best, default = min(medians, key=medians.__getitem__), candidates[0]
    path = best if medians[best] < medians[default] * (1 - MARGIN) else default
    # Read again: another job may have cached its choice meanwhile. atomic_write_text makes the folder if needed.
    atomic_write_text(cache, json.dumps({**read_cache(cache), key: path}, indent=1, sort_keys=True) + "\n")
    return Choice(path, cached=False, seconds_per_step=medians)


def timed(step: Callable[[], object], steps: int) -> float:
    """Seconds per call of `step`, over `steps` calls after one untimed call (timeit: garbage collection off)."""
    step()
    return timeit.timeit(step, number=steps) / steps
