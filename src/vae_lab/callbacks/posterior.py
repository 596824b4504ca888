"""Posterior diagnostics every validation epoch: how much of the latent space the model uses, while it trains.

Each validation batch is encoded once more (`encode` and `posterior_mean` are deterministic, so no random numbers
are drawn and the training's random stream is unchanged) and folded into running sums; when the validation epoch
ends (not in Lightning's sanity check):

  val/active_units        scalar: latent dimensions whose posterior mean (`posterior_mean(x)`) varies across the
                          validation images with variance > 0.01 (Burda et al. 2016, section 5.2), as
                          `vae_lab.evaluate` counts them
  val/posterior_variance  scalar: the variance of q(z|x) (its `variance`), averaged over images and dimensions (1 is
                          a standard-normal prior's; a collapsed dimension sits at 1 with a mean near 0); not logged
                          for a posterior without a closed-form variance (a flow)
  val/kl_per_dim          TensorBoard histogram: the exact KL(q(z_d|x) || p(z_d)) of each dimension d, averaged over
                          images (they sum to the mean analytic KL, `val/kl` with model.kl=analytic); only where q and
                          p factorize over dimensions with a closed-form KL (a Gaussian q, a Gaussian prior)
  val/kl_per_dim_sorted   TensorBoard image: those KLs sorted as bars, active units in blue, the others grey

The scalars go to every logger (step: the optimizer step, as `val/elbo`); the histogram and image to TensorBoard
at step = epochs trained, as the other images. Under DDP the sums are added across ranks first, and the scalars
are logged with `sync_dist=True`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torch.distributions import Distribution, Independent, kl_divergence

from vae_lab.callbacks.epoch_images import figure_image
from vae_lab.callbacks.tensorboard import tensorboard_writer

# Burda et al. (2016), section 5.2: a latent unit is active if its posterior mean varies across x by more than this.
ACTIVE_UNIT_THRESHOLD = 0.01


def count_active_units(mean_variance: Tensor) -> int:
    """How many dimensions' posterior means vary across x with variance (D,) above ACTIVE_UNIT_THRESHOLD."""
    return int((mean_variance > ACTIVE_UNIT_THRESHOLD).sum())


def posterior_variance(q: Distribution) -> Tensor | None:
    """q's variance per image and dimension (B, D); None where the distribution has no closed form (a flow)."""
    try:
        return q.variance
    except NotImplementedError:
        return None


def kl_per_dimension(q: Distribution, prior: Distribution) -> Tensor | None:
    """KL(q(z_d|x) || p(z_d)) per image and dimension (B, D), where both factorize over the dimensions
    (`Independent`) and torch.distributions has a closed form for their factors; else None (a VampPrior, a flow)."""
    if not (isinstance(q, Independent) and isinstance(prior, Independent)):
        return None
    try:
        return kl_divergence(q.base_dist, prior.base_dist)
    except NotImplementedError:
        return None


class PosteriorSums:
    """Per-dimension float64 sums over images of the posterior mean and its square, and (when given) the KL and the
    variance of q."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: dict[str, Tensor] = {}  # name -> (D,)

    def add(self, mean: Tensor, variance: Tensor | None = None, kl: Tensor | None = None) -> None:
        batch = {"mean": mean, "square": mean.double() ** 2, "variance": variance, "kl": kl}
        for name, values in batch.items():
            if values is not None:
                total = values.double().sum(dim=0)
                self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.count += len(mean)

    def reduce(self, strategy: Any, device: torch.device) -> None:
        """Add the sums of every process (DDP); a single process keeps its own."""
        self.count = int(strategy.reduce(torch.tensor(float(self.count), device=device), reduce_op="sum").item())
        self.sums = {name: strategy.reduce(values, reduce_op="sum") for name, values in self.sums.items()}

    def kl_per_dimension(self) -> Tensor | None:
        return self.sums["kl"] / self.count if "kl" in self.sums else None

    def mean_variance(self) -> Tensor:
        """Variance across images of each dimension's posterior mean (population variance, as evaluate's)."""
        average = self.sums["mean"] / self.count
        return (self.sums["square"] / self.count - average**2).clamp_min(0.0)

    def posterior_variance(self) -> float | None:
        return (self.sums["variance"] / self.count).mean().item() if "variance" in self.sums else None


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
        x = batch[0].to(pl_module.device, pl_module.dtype)
        with torch.no_grad():
            q = pl_module.encode(x)
            self.sums.add(pl_module.posterior_mean(x), posterior_variance(q),
                          kl_per_dimension(q, pl_module.prior.distribution()))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.sums.count:
            return
        self.sums.reduce(trainer.strategy, pl_module.device)
        active = self.sums.mean_variance() > ACTIVE_UNIT_THRESHOLD
        # Every rank holds the same reduced sums; sync_dist says so to Lightning (and averages identical values).
        pl_module.log("val/active_units", float(count_active_units(self.sums.mean_variance())), sync_dist=True)
        variance = self.sums.posterior_variance()
        if variance is not None:
            pl_module.log("val/posterior_variance", variance, sync_dist=True)
        kl = self.sums.kl_per_dimension()
        writer = tensorboard_writer(trainer)
        if kl is None or writer is None or not trainer.is_global_zero:
            return
        kl = kl.cpu()
        if not torch.isfinite(kl).all():  # diverged weights (with the NaN guard off): nothing to draw
            rank_zero_warn(f"the posterior's KL is not finite at epoch {trainer.current_epoch}; no KL histogram.")
            return
        step = trainer.current_epoch + 1  # epochs trained, as the image callbacks count
        writer.add_histogram("val/kl_per_dim", kl, global_step=step)
        title = f"epoch {step}: {int(active.sum())}/{len(kl)} active, KL {kl.sum().item():.2f} nats"
        writer.add_image("val/kl_per_dim_sorted", kl_bars_image(kl, active.cpu(), title), global_step=step)
