"""A test-only callback: pause once in the middle of an epoch, so a test can SIGKILL the run at a known point."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L


class PauseMidEpoch(L.Callback):
    """At `epoch`, after `batch` training batches, create `marker` and sleep; never again once `marker` exists."""

    def __init__(self, marker: str, epoch: int = 1, batch: int = 2, seconds: float = 120.0) -> None:
        self.marker, self.epoch, self.batch, self.seconds = Path(marker), epoch, batch, seconds

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx + 1 == self.batch and not self.marker.exists():
            self.marker.touch()
            time.sleep(self.seconds)
