"""A researcher's own model and dataset, outside vae_lab: one Python file (this one) and one YAML each."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae_lab.data.datamodule import BinarizedImages
from vae_lab.models.vae import VAE


class ToyVAE(VAE):
    """A one-hidden-layer VAE on 8 x 8 images."""

    def __init__(self, latent_dim: int = 2, lr: float = 1e-3, objective: str = "elbo", k: int = 1,
                 beta: float = 1.0, kl: str = "mc", hidden: int = 16) -> None:
        super().__init__(latent_dim, lr, objective, k, beta, kl)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent_dim),
                                     Halves())
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, 64),
                                     nn.Unflatten(1, (1, 8, 8)))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)


class Halves(nn.Module):
    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar


class ToyBars(BinarizedImages):
    """8 x 8 images of one bright horizontal bar, at a random row: 300 to train on, 100 to test."""

    def __init__(self, batch_size: int = 50, eval_batch_size: int = 100, binarize: str = "static",
                 threshold: float = 0.5, val_size: int = 0, shuffle: bool = True, seed: int = 0,
                 binarize_seed: int = 0, data_device: str = "auto") -> None:
        super().__init__(batch_size, eval_batch_size, binarize, threshold, val_size, shuffle, seed, binarize_seed,
                         data_device)
        self.save_hyperparameters()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        rows = torch.randint(0, 8, (400,), generator=torch.Generator().manual_seed(0))
        images = torch.zeros(400, 1, 8, 8, dtype=torch.uint8)
        images[torch.arange(400), 0, rows] = 255
        return images[:300], rows[:300], images[300:], rows[300:]
