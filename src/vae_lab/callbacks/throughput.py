"""Training throughput per epoch, with warm-up and validation counted apart: `perf/*` metrics.

Lightning's own `ThroughputMonitor` logs per step and synchronizes CUDA every step; this callback takes a few
timestamps per epoch (no per-step host sync) so that what it measures is what a run costs:

  perf/train_images_per_s  training images / s after the first `warmup_steps` steps (compilation, oneDNN
                           primitive creation and allocator growth happen there)
  perf/train_images_per_cpu_s  the same images per second of this process's CPU time (all threads): on a
                           machine shared with other jobs, the cost of the work rather than the share of cores
  perf/warmup_s            wall time of those first steps
  perf/val_s               wall time of the validation loop inside fit (10,000 images by default)
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import lightning as L
import torch

from vae_lab.config_checks import check_arguments, positive


class EpochThroughput(L.Callback):
    def __init__(self, warmup_steps: Annotated[int, positive(5)] = 5) -> None:
        check_arguments(EpochThroughput, locals(), "callbacks.throughput")
        self.warmup_steps = warmup_steps
        self.history: list[dict[str, float]] = []  # one entry per epoch, for callers that read it directly
        self._reset()

    def _reset(self) -> None:
        self._start: float | None = None
        self._warm: float | None = None
        self._end: float | None = None
        self._cpu_warm = self._cpu_end = 0.0
        self._images = 0
        self._val_start: float | None = None
        self._val_in_train_s = 0.0  # validation run mid-epoch (val_check_interval < 1), taken out of training time
        self._val_s = 0.0

    @staticmethod
    def _now(pl_module: L.LightningModule) -> float:
        # GPU work is asynchronous: wait for it at the few boundaries we time, never per step.
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        self._start = self._now(pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        last = batch_idx + 1 >= trainer.num_training_batches
        if batch_idx + 1 == self.warmup_steps:
            self._warm, self._cpu_warm = self._now(pl_module), time.process_time()
        elif batch_idx >= self.warmup_steps:
            self._images += len(batch[0])
            if last:
                self._end, self._cpu_end = self._now(pl_module), time.process_time()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._start is None:
            return
        self._val_start = self._now(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is None:
            return
        seconds = self._now(pl_module) - self._val_start
        self._val_s += seconds
        if self._warm is not None and self._end is None:
            self._val_in_train_s += seconds
        self._val_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None or self._warm is None or self._end is None or self._images == 0:
            return  # fewer steps than the warm-up: nothing steady to report
        record = {
            "perf/train_images_per_s": self._images / (self._end - self._warm - self._val_in_train_s),
            "perf/train_images_per_cpu_s": self._images / (self._cpu_end - self._cpu_warm),
            "perf/warmup_s": self._warm - self._start,
            "perf/val_s": self._val_s,
        }
        self.history.append(record)
        for name, value in record.items():
            pl_module.log(name, value, on_step=False, on_epoch=True)
