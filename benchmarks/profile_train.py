"""Where a training step of vae_lab's real path spends its time: torch.profiler inside `train(cfg)`.

    make profile                           # 20 profiled steps after 20 unprofiled ones, default config
    make profile ARGS="--steps 40 data.batch_size=32"   # more steps; any Hydra overrides after the options

Runs `vae_lab.train.train(cfg)` with the composed default config (one epoch cut to warm-up + profiled steps,
one validation batch, no progress bar) and a `StepProfiler` callback that records the profiled steps with
`torch.profiler` and writes every op's self CPU time to a JSON file. Prints the self CPU time per step grouped
by kind of work (convolutions, ReLUs, matmuls, Adam, copies, Lightning's Python around the step), then the top ops.
The profiler adds its own overhead (a few percent, most of it in the Python-level rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
from train_speed import REPO, STEPS_PER_EPOCH, compose_train_config

KINDS = (  # (kind, predicate on the lower-cased op name); the first match wins
    ("convolution backward", lambda n: "convolution_backward" in n),
    ("convolution forward", lambda n: "convolution" in n),
    ("ReLU forward and backward, log-sigmoid",
     lambda n: n in ("aten::clamp_min", "aten::relu", "aten::threshold_backward") or "log_sigmoid" in n),
    ("dense layers (matmul)", lambda n: n in ("aten::mm", "aten::addmm")),
    ("Adam (the fused kernel)", lambda n: "fused_adam" in n),
    ("Python around the step (Lightning's closure, module code, autograd)", lambda n: n.startswith("optimizer.step")),
    ("copies, pads, fills", lambda n: n in ("aten::copy_", "aten::constant_pad_nd", "aten::fill_", "aten::zero_")),
)
OTHER = "everything else (NaN guard, ELBO, data slicing, ...)"


def kind_of(op_name: str) -> str:
    name = op_name.lower()
    return next((kind for kind, matches in KINDS if matches(name)), OTHER)


class StepProfiler(L.Callback):
    """Profiles training batches `start` .. `start + steps - 1`; writes {op: self CPU microseconds} to `report`."""

    def __init__(self, start: int, steps: int, report: str) -> None:
        self.start, self.steps, self.report = start, steps, Path(report)
        self._profiler: Any = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.start:
            from torch.profiler import ProfilerActivity, profile

            # Kineto's own log lines (profiler_start/stop, a GPU probe's "ERROR" on a CPU-only machine): silenced.
            os.environ.setdefault("KINETO_LOG_LEVEL", "6")
            self._profiler = profile(activities=[ProfilerActivity.CPU])
            self._profiler.__enter__()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.start + self.steps - 1:
            self._profiler.__exit__(None, None, None)
            times = {event.key: event.self_cpu_time_total for event in self._profiler.key_averages()}
            self.report.write_text(json.dumps({"steps": self.steps, "self_cpu_us": times}))
            self._profiler = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._profiler is not None:  # the run ended before the last profiled step (a step limit in overrides)
            self._profiler.__exit__(None, None, None)
            raise RuntimeError(f"training stopped before step {self.start + self.steps}; profile fewer steps.")


def grouped(self_cpu_us: dict[str, float]) -> Counter:
    groups: Counter = Counter()
    for op, micros in self_cpu_us.items():
        groups[kind_of(op)] += micros
    return groups


def print_profile(report: dict[str, Any], top: int = 12) -> None:
    steps, times = report["steps"], report["self_cpu_us"]
    total = sum(times.values())
    print(f"{'kind of work':<72} {'share':>6} {'ms/step':>8}")
    for kind, micros in grouped(times).most_common():
        print(f"{kind:<72} {100 * micros / total:5.1f}% {micros / steps / 1e3:8.2f}")
    print(f"{'all (self CPU time, profiler on)':<72} {100.0:5.1f}% {total / steps / 1e3:8.2f}")
    print(f"\ntop {top} ops by self CPU time")
    for op, micros in sorted(times.items(), key=lambda item: -item[1])[:top]:
        print(f"{op[:72]:<72} {100 * micros / total:5.1f}% {micros / steps / 1e3:8.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup-steps", type=int, default=20, help="unprofiled steps first (default 20)")
    parser.add_argument("--steps", type=int, default=20, help="profiled steps (default 20)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="folder holding MNIST/raw")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the training config")
    args = parser.parse_args(argv)
    if args.warmup_steps < 1 or args.steps < 1 or args.warmup_steps + args.steps > STEPS_PER_EPOCH:
        parser.error(f"--warmup-steps={args.warmup_steps} and --steps={args.steps} are not allowed; use 1 or more, "
                     f"{STEPS_PER_EPOCH} (one epoch) at most together.")
    return args


def main(argv: list[str] | None = None) -> None:
    from vae_lab.train import train

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vae_lab_profile_") as tmp:
        report = Path(tmp) / "profile.json"
        cfg = compose_train_config(
            [
                f"paths.data_dir={args.data_dir}",
                "trainer.max_epochs=1",
                f"++trainer.limit_train_batches={args.warmup_steps + args.steps}",
                "++trainer.limit_val_batches=1",
                "++trainer.enable_progress_bar=false",
                "+callbacks.profile._target_=profile_train.StepProfiler",
                f"+callbacks.profile.start={args.warmup_steps}",
                f"+callbacks.profile.steps={args.steps}",
                f"+callbacks.profile.report={report}",
                *args.overrides,
            ],
            Path(tmp),
        )
        with contextlib.redirect_stdout(sys.stderr):  # Lightning's summary; stdout keeps the profile
            train(cfg)
        print_profile(json.loads(report.read_text()))


if __name__ == "__main__":
    main()
