"""A fixed batch of validation digits above their reconstructions, to see what the code keeps."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torchvision.utils import make_grid

from vae_lab.callbacks.epoch_images import EpochImageCallback, validation_images
from vae_lab.errors import check_positive


class Reconstructions(EpochImageCallback):
    """Row 1: `num_images` validation images; row 2: `pl_module.reconstruct(x)`, the likelihood's mean at the
    posterior's mean (deterministic, so the grids of successive epochs are comparable; colour stays colour).

    Logged as `reconstructions/val`; the latest grid is also saved as `reconstructions.png`.
    """

    config_key = "callbacks.reconstructions"

    def __init__(self, dirpath: str | None = None, num_images: int = 8, every_n_epochs: int = 1) -> None:
        super().__init__(dirpath, every_n_epochs)
        check_positive(f"{self.config_key}.num_images", num_images, 8)
        self.num_images = num_images
        self.images: Tensor | None = None

    def render(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        if self.images is None:
            self.images, _ = validation_images(trainer, self.num_images)
        reconstructions = pl_module.reconstruct(self.images.to(pl_module.device)).float().cpu()
        grid = make_grid(torch.cat([self.images.float(), reconstructions]), nrow=len(self.images))
        self.save_grid(trainer, grid, "reconstructions/val", "reconstructions.png", step)
