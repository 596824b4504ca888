"""Posterior diagnostics every validation epoch: how much of the latent space the model uses, while it trains.

Each validation batch is encoded once more (`encode` is deterministic, so no random numbers are drawn and the
training's random stream is unchanged) and its q(z|x) = N(mean, diag(exp(logvar))) folded into running sums; when
the validation epoch ends (not in Lightning's sanity check):

  val/active_units        scalar: latent dimensions whose posterior mean varies across the validation images with
                          variance > 0.01 (Burda et al. 2016, section 5.2), as `vae_lab.evaluate` counts them
  val/posterior_variance  scalar: exp(logvar) averaged over images and dimensions (1 is the prior's; a collapsed
                          dimension sits at 1 with a mean near 0)
  val/kl_per_dim          TensorBoard histogram: the exact KL(q(z_d|x) || N(0, 1)) of each dimension d, averaged
                          over images (they sum to the mean analytic KL, `val/kl` with model.kl=analytic)
  val/kl_per_dim_sorted   TensorBoard image: those KLs sorted as bars, active units in blue, the others grey

The scalars go to every logger (step: the optimizer step, as `val/elbo`); the histogram and image to TensorBoard
at step = epochs trained, as the other images. Under DDP the sums are added across ranks first.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor

from vae_lab.callbacks.epoch_images import figure_image
from vae_lab.callbacks.tensorboard import tensorboard_writer
from vae_lab.objectives import analytic_kl_per_dimension

# Burda et al. (2016), section 5.2: a latent unit is active if its posterior mean varies across x by more than this.
ACTIVE_UNIT_THRESHOLD = 0.01


def count_active_units(mean_variance: Tensor) -> int:
    """How many dimensions' posterior means vary across x with variance (D,) above ACTIVE_UNIT_THRESHOLD."""
    return int((mean_variance > ACTIVE_UNIT_THRESHOLD).sum())


class PosteriorSums:
    """Per-dimension float64 sums over images of the posterior mean, its square, the KL and the variance."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: Tensor | None = None  # (4, D): mean, mean**2, KL, exp(logvar)

    def add(self, mean: Tensor, logvar: Tensor) -> None:
        mean, logvar = mean.double(), logvar.double()
        batch = torch.stack([mean, mean**2, analytic_kl_per_dimension(mean, logvar), logvar.exp()]).sum(dim=1)
        self.sums = batch if self.sums is None else self.sums + batch
        self.count += len(mean)

    def kl_per_dimension(self) -> Tensor:
        return self.sums[2] / self.count

    def mean_variance(self) -> Tensor:
        """Variance across images of each dimension's posterior mean (population variance, as evaluate's)."""
        average = self.sums[0] / self.count
        return (self.sums[1] / self.count - average**2).clamp_min(0.0)

    def posterior_variance(self) -> float:
        return (self.sums[3] / self.count).mean().item()


def kl_bars_image(kl: Tensor, active: Tensor, title: str) -> Tensor:
    """Per-dimension KL sorted from largest to smallest as bars (active units blue), as a (3, H, W) image."""
    order = torch.argsort(kl, descending=True)
    figure = Figure(figsize=(6, 3.2), dpi=80)
    axes = figure.add_subplot()
    colors = ["tab:blue" if active[index] else "tab:gray" for index in order.tolist()]
    axes.bar(range(len(kl)), kl[order].tolist(), color=colors, width=0.9)
    axes.set(xlabel="latent dimensions, sorted by KL (blue: active)", ylabel="KL (nats)", title=title)
    axes.set_xlim(-0.6, len(kl) - 0.4)
    return figure_image(figure)


class PosteriorDiagnostics(L.Callback):
    """Per-dimension KL, active units and mean posterior variance of the validation images, every validation."""

    def __init__(self) -> None:
        self.sums = PosteriorSums()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sums = PosteriorSums()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking:
            return
        x = batch[0]
        mean, logvar = pl_module.encode(x.to(pl_module.device, pl_module.dtype))
        self.sums.add(mean, logvar)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.sums.sums is None:
            return
        count = trainer.strategy.reduce(torch.tensor(float(self.sums.count), device=pl_module.device),
                                       reduce_op="sum")
        self.sums.sums = trainer.strategy.reduce(self.sums.sums, reduce_op="sum")
        self.sums.count = int(count.item())
        active = self.sums.mean_variance() > ACTIVE_UNIT_THRESHOLD
        kl = self.sums.kl_per_dimension().cpu()
        pl_module.log("val/active_units", float(count_active_units(self.sums.mean_variance())))
        pl_module.log("val/posterior_variance", self.sums.posterior_variance())
        writer = tensorboard_writer(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        if not torch.isfinite(kl).all():  # diverged weights (with the NaN guard off): nothing to draw
            rank_zero_warn(f"the posterior's KL is not finite at epoch {trainer.current_epoch}; no KL histogram.")
            return
        step = trainer.current_epoch + 1  # epochs trained, as the image callbacks count
        writer.add_histogram("val/kl_per_dim", kl, global_step=step)
        title = f"epoch {step}: {int(active.sum())}/{len(kl)} active, KL {kl.sum().item():.2f} nats"
        writer.add_image("val/kl_per_dim_sorted", kl_bars_image(kl, active.cpu(), title), global_step=step)
