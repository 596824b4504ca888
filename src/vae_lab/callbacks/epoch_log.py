"""One log line per training epoch with its metrics, so `grep val/elbo train.log` gives the curve.

`epoch 2/10: train/elbo -160.1234 ... val/elbo -158.4321 val/kl 24.5678 val/recon -133.8643` once the epoch's
training and validation are done (Lightning validates before `on_train_epoch_end`). An epoch without validation
(`trainer.check_val_every_n_epoch` > 1) lists its train/* metrics only, never an earlier epoch's val/*. The job
logging config (`conf/hydra/job_logging/vae_lab.yaml`) sends this logger to train.log only.
"""

from __future__ import annotations

import logging

import lightning as L

from vae_lab.callbacks.progress_bar import epoch_label

log = logging.getLogger(__name__)


class EpochLog(L.Callback):
    def __init__(self) -> None:
        self._validated = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        validated, self._validated = self._validated, False
        if not trainer.is_global_zero:
            return
        metrics = {name: float(value) for name, value in sorted(trainer.callback_metrics.items())
                   if validated or not name.startswith("val/")}
        log.info("%s: %s", epoch_label(trainer).lower(),
                 " ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
