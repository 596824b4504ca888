"""The tutorial's picture: the same draws from the model every epoch, from the untrained model onwards."""

from __future__ import annotations

from typing import Any

import lightning as L
from torch import Tensor
from torchvision.utils import make_grid

from vae_lab.callbacks.epoch_images import EpochImageCallback, seeded
from vae_lab.errors import check_positive, check_seed

# The tutorial's file names; the GIF callback assembles every file matching PNG_GLOB.
PNG_NAME = "image_at_epoch_{step:04d}.png"
PNG_GLOB = "image_at_epoch_*.png"


class SampleGrid(EpochImageCallback):
    """`num_samples` images drawn from the model, `pl_module.sample(n)` (the likelihood's mean at z ~ p(z)), in a grid
    of `nrow` images per row.

    The draws are fixed for the run: every grid draws from the model's current prior with torch's stream seeded by
    `seed` (restored afterwards, so training's stream is untouched), so a fixed prior (N(0, I)) gives the same z in
    every grid and a learned one (a VampPrior, a mixture) maps the same noise through its current state. The seed
    is saved in the checkpoint's callback state with the last grid's z, so a resumed run keeps drawing the same
    images. Saved as `image_at_epoch_NNNN.png`, logged as `samples/grid`.
    """

    config_key = "callbacks.sample_grid"

    def __init__(
        self,
        dirpath: str | None = None,
        num_samples: int = 16,
        nrow: int = 4,
        every_n_epochs: int = 1,
        seed: int = 42,
    ) -> None:
        super().__init__(dirpath, every_n_epochs)
        check_positive(f"{self.config_key}.num_samples", num_samples, 16)
        check_positive(f"{self.config_key}.nrow", nrow, 4)
        check_seed(f"{self.config_key}.seed", seed)
        self.num_samples, self.nrow, self.seed = num_samples, nrow, seed
        self.z: Tensor | None = None  # the last grid's latent vectors (the checkpoint's record of what was drawn)

    def draw(self, pl_module: L.LightningModule) -> tuple[Tensor, Tensor]:
        """(z, images): `num_samples` draws from the model's prior and their likelihood means, from `seed`."""
        with seeded(self.seed, pl_module.device):
            z = pl_module.prior.sample(self.num_samples)
        return z, pl_module.decode_mean(z)

    def render(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        z, images = self.draw(pl_module)
        self.z = z.detach().float().cpu()
        grid = make_grid(images.float().cpu(), nrow=self.nrow)
        self.save_grid(trainer, grid, "samples/grid", PNG_NAME.format(step=step), step)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "z": self.z}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed, self.z = state_dict["seed"], state_dict["z"]
