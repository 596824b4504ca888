"""Training throughput per epoch, with warm-up and validation counted apart: `perf/*` metrics (benchmarks only:
train_speed.py and gpu_speed.py add it as `+callbacks.throughput._target_=throughput.EpochThroughput`).

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
from typing import Any

import lightning as L
import torch


class EpochThroughput(L.Callback):
    def __init__(self, warmup_steps: int = 5) -> None:
        self.warmup_steps = warmup_steps
        self._start = self._warm = self._end = None  # (wall, CPU) seconds at the epoch's start, warm-up end, last step

    @staticmethod
    def _clock(pl_module: L.LightningModule) -> tuple[float, float]:
        # GPU work is asynchronous: wait for it at the few boundaries we time, never per step.
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter(), time.process_time()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._warm, self._end = self._clock(pl_module), None, None
        self._images, self._val_s, self._val_in_train_s = 0, 0.0, 0.0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 == self.warmup_steps:
            self._warm = self._clock(pl_module)
        elif batch_idx >= self.warmup_steps:
            self._images += len(batch[0])
            if batch_idx + 1 >= trainer.num_training_batches:  # before the epoch's validation, checkpoints, images
                self._end = self._clock(pl_module)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = self._clock(pl_module)[0]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._start is None:
            return
        seconds = self._clock(pl_module)[0] - self._val_start
        self._val_s += seconds
        if self._warm is not None and self._end is None:  # mid-epoch (val_check_interval < 1): not training time
            self._val_in_train_s += seconds

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._warm is None or self._end is None:
            return  # fewer steps than the warm-up: nothing steady to report
        pl_module.log_dict({
            "perf/train_images_per_s": self._images / (self._end[0] - self._warm[0] - self._val_in_train_s),
            "perf/train_images_per_cpu_s": self._images / (self._end[1] - self._warm[1]),
            "perf/warmup_s": self._warm[0] - self._start[0],
            "perf/val_s": self._val_s,
        }, on_step=False, on_epoch=True)
