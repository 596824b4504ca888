"""What the latent space looks like: decoded quantile grid (2-D standard-normal prior) and validation means by label."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torch.distributions import Normal
from torchvision.utils import make_grid

from vae_lab.callbacks.epoch_images import EpochImageCallback, figure_image, validation_images
from vae_lab.errors import check_positive, is_int, refuse

# The largest manifold grid: 100 x 100 = 10,000 decoded images (a 2800 px PNG for MNIST). Beyond it the picture
# is no more readable and its memory grows with the square (grid_size=300 peaked at 23.4 GB). Decoded in slices
# of DECODE_AT_ONCE images.
MAX_GRID_SIZE, DECODE_AT_ONCE = 100, 1000


def quantile_grid(size: int) -> Tensor:
    """(size * size, 2) points at standard-normal quantiles of linspace(0.05, 0.95, size), row by row.

    As the tutorial's `plot_latent_images`: z[0] varies along a row (columns), z[1] down the rows.
    """
    quantiles = Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, size))
    rows, columns = torch.meshgrid(quantiles, quantiles, indexing="ij")
    return torch.stack([columns.flatten(), rows.flatten()], dim=1)


def first_two_coordinates(means: Tensor) -> tuple[Tensor, tuple[str, str]]:
    """The means themselves when 2-D, else their projection on the first two principal components."""
    if means.shape[1] == 2:
        return means, ("z[0]", "z[1]")
    # Exact SVD rather than torch.pca_lowrank, which would draw from (and so shift) the global RNG.
    centered = means - means.mean(dim=0)
    _, _, right_vectors = torch.linalg.svd(centered, full_matrices=False)
    coordinates = centered @ right_vectors[:2].T
    if coordinates.shape[1] < 2:  # one point (or one latent unit) has a single component: the second is 0
        coordinates = torch.cat([coordinates, torch.zeros(len(means), 2 - coordinates.shape[1])], dim=1)
    return coordinates, ("principal component 1", "principal component 2")


def scatter_image(points: Tensor, labels: Tensor, axis_names: tuple[str, str], title: str) -> Tensor:
    """A matplotlib scatter coloured by digit, drawn once with the Agg backend into a (3, H, W) image in [0, 1]."""
    figure = Figure(figsize=(5.5, 5), dpi=80)
    axes = figure.add_subplot()
    dots = axes.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=4)
    figure.colorbar(dots, ax=axes, ticks=range(10), label="digit")
    axes.set(xlabel=axis_names[0], ylabel=axis_names[1], title=title)
    return figure_image(figure)


class LatentManifold(EpochImageCallback):
    """`latent/manifold`: a grid_size x grid_size grid of the likelihood's mean at the prior's quantiles, only where
    that means something: a 2-D standard-normal prior (`model.prior.standard_normal` and latent_dim = 2).
    `latent/means`: the posterior means `posterior_mean(x)` of the first `num_points` validation images, coloured
    by label (first two principal components when latent_dim > 2; skipped when latent_dim = 1).
    Latest pictures also saved as `latent_manifold.png` and `latent_scatter.png`.
    """

    config_key = "callbacks.latent_manifold"

    def __init__(
        self, dirpath: str | None = None, grid_size: int = 20, num_points: int = 1000, every_n_epochs: int = 1,
    ) -> None:
        super().__init__(dirpath, every_n_epochs)
        if not (is_int(grid_size) and 1 <= grid_size <= MAX_GRID_SIZE):  # memory grows with the grid's square
            raise refuse(f"{self.config_key}.grid_size", grid_size, f"a size from 1 to {MAX_GRID_SIZE} like 20 (the "
                         f"tutorial's; {MAX_GRID_SIZE} is already {MAX_GRID_SIZE * 28} px wide for MNIST)")
        check_positive(f"{self.config_key}.num_points", num_points, 1000)
        self.grid_size, self.num_points = grid_size, num_points
        self.points: tuple[Tensor, Tensor] | None = None

    def render(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        latent_dim = pl_module.latent_dim
        if latent_dim == 2 and getattr(pl_module.prior, "standard_normal", False):
            points = quantile_grid(self.grid_size)  # decoded in slices: memory of one slice, whatever the grid
            images = torch.cat([pl_module.decode_mean(z).float().cpu() for z in points.split(DECODE_AT_ONCE)])
            grid = make_grid(images, nrow=self.grid_size, padding=0)
            self.save_grid(trainer, grid, "latent/manifold", "latent_manifold.png", step)
        if latent_dim >= 2:
            if self.points is None:
                self.points = validation_images(trainer, self.num_points)
            images, labels = self.points
            means = torch.cat([pl_module.posterior_mean(x).float().cpu() for x in images.split(DECODE_AT_ONCE)])
            if not torch.isfinite(means).all():  # diverged weights (with the NaN guard off): nothing to draw
                rank_zero_warn(f"latent means are not finite at epoch {step}; no latent scatter drawn.")
                return
            points, axis_names = first_two_coordinates(means)
            image = scatter_image(points, labels, axis_names, f"validation latent means, epoch {step}")
            self.save_grid(trainer, image, "latent/means", "latent_scatter.png", step)
