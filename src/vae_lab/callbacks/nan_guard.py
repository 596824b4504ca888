"""Stop at the first non-finite loss or gradient, or a loss beyond `max_loss` (a diverging run: `model.lr=1e9`
drives the ELBO to -1e22 without a NaN), keeping what is needed to understand and recover.

Checked after backward and before the optimizer step, so the weights are still those of the last good step: they
are saved as `checkpoints/last_good.ckpt` (resumable), the offending batch as `nan_batch.pt` (`nan_batch_rank<r>.pt`
under DDP), and the run fails with a `VaeLabError` naming the epoch and step. One host sync per step (one flag);
under DDP the ranks agree on the flag, so all stop together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from vae_lab.checkpoints import atomic_torch_save
from vae_lab.errors import ConfigError, VaeLabError


class NonFiniteTrainingError(VaeLabError):
    """The loss or a gradient became NaN or infinite, or the loss left the range a converging run stays in."""


class NanGuard(L.Callback):
    def __init__(self, dirpath: str | None = None, max_loss: float | None = 1e6) -> None:
        if max_loss is not None and not max_loss > 0:
            raise ConfigError(f"callbacks.nan_guard.max_loss={max_loss} is not allowed; use a positive number like "
                              "1e6 (nats per image), or null for no limit.")
        self.dirpath, self.max_loss = dirpath, max_loss
        self._batch: Any = None
        self._batch_idx = -1
        self._loss: Tensor | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch, self._batch_idx = batch, batch_idx  # a reference only, kept in case this batch is the bad one

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        checked = [t for t in (self._loss, *(p.grad for p in pl_module.parameters())) if t is not None]
        flags = [~torch.isfinite(t).all() for t in checked]
        if self._loss is not None and self.max_loss is not None:
            flags.append(self._loss.abs().max() > self.max_loss)
        bad = bool(torch.stack(flags).any()) if flags else False  # one flag on the device, one host sync
        if not trainer.strategy.reduce_boolean_decision(bad, all=False):
            return
        run_dir = Path(self.dirpath or trainer.default_root_dir)
        epoch, step = trainer.current_epoch, trainer.global_step
        rank = "" if trainer.world_size == 1 else f"_rank{trainer.global_rank}"
        batch_path = run_dir / f"nan_batch{rank}.pt"
        loss = float(self._loss) if self._loss is not None and self._loss.numel() == 1 else None
        atomic_torch_save({"batch": self._batch, "epoch": epoch, "step": step, "batch_idx": self._batch_idx,
                           "loss": loss}, batch_path)
        checkpoint = run_dir / "checkpoints" / "last_good.ckpt"
        if all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            trainer.save_checkpoint(checkpoint)  # every rank calls it (they agreed on `bad`); rank zero writes
            saved = f"the last good weights (before this step) to {checkpoint}"
        else:
            saved = f"no weights (they are already non-finite; {checkpoint.with_name('last.ckpt')} is older)"
        finite = self._loss is None or bool(torch.isfinite(self._loss).all())
        beyond = finite and loss is not None and self.max_loss is not None and abs(loss) > self.max_loss
        what = (f"the loss {loss:.3g} is beyond callbacks.nan_guard.max_loss={self.max_loss:g}" if beyond else
                f"the {'gradient' if finite else 'loss'} is not finite")
        raise NonFiniteTrainingError(
            f"Training diverged at epoch {epoch}, step {step} (batch {self._batch_idx}): {what} (loss={loss}); saved "
            f"the batch to {batch_path} and {saved}; lower model.lr (now {pl_module.hparams.get('lr')}) and start "
            "again."
        )
