"""Stop at the first non-finite loss or gradient, or a loss beyond `max_loss` (a diverging run: `model.lr=1e9` drives
the ELBO to -1e22 without a NaN). Checked after backward and before the optimizer step, so the weights are still the
last good step's: saved as `checkpoints/last_good.ckpt` (resumable), the batch as `nan_batch.pt` (`nan_batch_rank<r>.pt`
under DDP); then a `VaeLabError` names the epoch and step. One host sync per step; under DDP all ranks stop together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from vae_lab.atomic_files import atomic_write
from vae_lab.errors import VaeLabError, refuse


class NonFiniteTrainingError(VaeLabError):
    """The loss or a gradient became NaN or infinite, or the loss left the range a converging run stays in."""


class NanGuard(L.Callback):
    def __init__(self, dirpath: str | None = None, max_loss: float | None = 1e6) -> None:
        if max_loss is not None and not (isinstance(max_loss, (int, float)) and not isinstance(max_loss, bool)
                                         and 0 < max_loss < float("inf")):  # nats per image; null: no limit
            raise refuse("callbacks.nan_guard.max_loss", max_loss, "null or a positive number like 1e6")
        self.dirpath, self.max_loss = dirpath, max_loss
        self._batch, self._batch_idx, self._loss = None, -1, None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch, self._batch_idx = batch, batch_idx  # a reference only, kept in case this batch is the bad one

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        loss, limit = self._loss, self.max_loss
        flags = [~torch.isfinite(t).all() for t in (loss, *(p.grad for p in pl_module.parameters())) if t is not None]
        flags += [loss.abs().max() > limit] if loss is not None and limit is not None else []
        if not trainer.strategy.reduce_boolean_decision(bool(flags and torch.stack(flags).any()), all=False):
            return  # one flag on the device, one host sync
        run_dir = Path(self.dirpath or trainer.default_root_dir)
        epoch, step = trainer.current_epoch, trainer.global_step
        batch_path = run_dir / f"nan_batch{'' if trainer.world_size == 1 else f'_rank{trainer.global_rank}'}.pt"
        value = float(loss) if loss is not None and loss.numel() == 1 else None
        record = {"batch": self._batch, "epoch": epoch, "step": step, "batch_idx": self._batch_idx, "loss": value}
        atomic_write(batch_path, lambda stream: torch.save(record, stream))
        checkpoint = run_dir / "checkpoints" / "last_good.ckpt"
        if all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            trainer.save_checkpoint(checkpoint)  # every rank calls it (they agreed to stop); rank zero writes
            saved = f"the last good weights (before this step) to {checkpoint}"
        else:
            saved = f"no weights (they are already non-finite; {checkpoint.with_name('last.ckpt')} is older)"
        finite = loss is None or bool(torch.isfinite(loss).all())
        what = f"the {'gradient' if finite else 'loss'} is not finite"
        if finite and value is not None and limit is not None and abs(value) > limit:
            what = f"the loss {value:.3g} is beyond callbacks.nan_guard.max_loss={limit:g}"
        raise NonFiniteTrainingError(f"Training diverged at epoch {epoch}, step {step} (batch {self._batch_idx}): "
                                     f"{what} (loss={value}); saved the batch to {batch_path} and {saved}; lower "
                                     f"model.lr (now {pl_module.hparams.get('lr')}) and start again.")
