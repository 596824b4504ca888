"""A test-only callback: pause once in the middle of an epoch, so a test can SIGKILL the run at a known point."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig


class PauseMidEpoch(L.Callback):
    """At `epoch`, after `batch` training batches, create `marker` and sleep; never again once `marker` exists.

    In a sweep, `job` (a Hydra job number) pauses that job alone; the others run through. A SIGTERM ends the pause.
    """

    def __init__(self, marker: str, epoch: int = 1, batch: int = 2, seconds: float = 120.0,
                 job: int | None = None) -> None:
        self.marker, self.epoch, self.batch, self.seconds, self.job = Path(marker), epoch, batch, seconds, job

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.job is not None and HydraConfig.get().job.num != self.job:
            return
        if trainer.current_epoch == self.epoch and batch_idx + 1 == self.batch and not self.marker.exists():
            self.marker.touch()
            end = time.monotonic() + self.seconds
            while time.monotonic() < end and not trainer.received_sigterm:  # Ctrl-C interrupts the sleep itself;
                time.sleep(0.1)  # SIGTERM only sets Lightning's flag, acted on at the next batch
