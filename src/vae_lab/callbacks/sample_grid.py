"""The tutorial's picture: the same latent vectors decoded every epoch, from the untrained model onwards."""

from __future__ import annotations

from typing import Annotated, Any

import lightning as L
import torch
from torch import Tensor
from torchvision.utils import make_grid

from vae_lab.callbacks.epoch_images import EpochImageCallback
from vae_lab.config_checks import check_arguments, positive

# The tutorial's file names; the GIF callback assembles every file matching PNG_GLOB.
PNG_NAME = "image_at_epoch_{step:04d}.png"
PNG_GLOB = "image_at_epoch_*.png"


class SampleGrid(EpochImageCallback):
    """Decode `num_samples` fixed z ~ N(0, I) with `pl_module.sample(z)` into a grid of `nrow` images per row.

    z is drawn once from `seed` (not from the global RNG) and saved in the checkpoint's callback state, so a
    resumed run keeps drawing the same digits. Saved as `image_at_epoch_NNNN.png`, logged as `samples/grid`.
    """

    config_key = "callbacks.sample_grid"

    def __init__(
        self,
        dirpath: str | None = None,
        num_samples: Annotated[int, positive(16)] = 16,
        nrow: Annotated[int, positive(4)] = 4,
        every_n_epochs: Annotated[int, positive(1)] = 1,
        seed: int = 42,
    ) -> None:
        super().__init__(dirpath, every_n_epochs)
        check_arguments(SampleGrid, locals(), self.config_key)
        self.num_samples, self.nrow, self.seed = num_samples, nrow, seed
        self.z: Tensor | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Drawn here because latent_dim is known only now; a checkpoint's z replaces it in load_state_dict.
        if self.z is None:
            generator = torch.Generator().manual_seed(self.seed)
            self.z = torch.randn(self.num_samples, pl_module.hparams.latent_dim, generator=generator)

    def render(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        images = pl_module.sample(self.z.to(pl_module.device))
        grid = make_grid(images.float().cpu(), nrow=self.nrow)
        self.save_grid(trainer, grid, "samples/grid", PNG_NAME.format(step=step), step)

    def state_dict(self) -> dict[str, Any]:
        return {"z": self.z}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.z = state_dict["z"]
