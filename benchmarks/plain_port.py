"""The tutorial's CVAE ported to PyTorch as most ports are written: a benchmark row, not vae_lab's model.

NCHW tensors, `nn.Sequential` of stock layers with PyTorch's default initialisation, the Keras "same" stride-2
transposed convs written as `ConvTranspose2d(..., padding=1, output_padding=1)` (which keeps rows 1..2n of the full
output where Keras keeps 0..2n-1: the same layer shapes and cost, a one-pixel shift of what the weights mean), the
tutorial's `compute_loss` term by term, a `DataLoader` over a `TensorDataset`, plain `torch.optim.Adam(lr=1e-4)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class PlainCVAE(nn.Module):
    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 6 * 6, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 7 * 7 * 32), nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, stride=1, padding=1),
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)


def log_normal_pdf(sample: Tensor, mean: Tensor | float, logvar: Tensor | float) -> Tensor:
    logvar = torch.as_tensor(logvar, dtype=sample.dtype)
    return (-0.5 * ((sample - mean) ** 2 * torch.exp(-logvar) + logvar + math.log(2 * math.pi))).sum(dim=1)


def compute_loss(model: PlainCVAE, x: Tensor, eps: Tensor | None = None) -> Tensor:
    """The negative single-sample ELBO, averaged over the batch (the tutorial's `compute_loss`)."""
    mean, logvar = model.encode(x)
    eps = torch.randn_like(mean) if eps is None else eps
    z = eps * torch.exp(logvar * 0.5) + mean
    x_logit = model.decode(z)
    logpx_z = -F.binary_cross_entropy_with_logits(x_logit, x, reduction="none").sum(dim=(1, 2, 3))
    logpz = log_normal_pdf(z, 0.0, 0.0)
    logqz_x = log_normal_pdf(z, mean, logvar)
    return -(logpx_z + logpz - logqz_x).mean()
