"""The tutorial's convolutional encoder and decoder, in pure torch (no Lightning).

Shapes follow the Keras layers of the TensorFlow "Convolutional Variational Autoencoder" tutorial:
encoder 28 -> 13 -> 6 ("valid" stride-2 convs), decoder 7 -> 14 -> 28 ("same" stride-2 transposed convs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _keras_init(module: nn.Module) -> None:
    # Keras' defaults (Glorot-uniform kernels, zero biases), so training starts where the tutorial's does.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """x (B, 1, 28, 28) -> mean, log-variance (B, latent_dim) of q(z|x)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=2)  # 28 -> 13
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=2)  # 13 -> 6
        self.dense = nn.Linear(64 * 6 * 6, 2 * latent_dim)
        self.apply(_keras_init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        mean, logvar = self.dense(h.flatten(1)).chunk(2, dim=1)
        return mean, logvar


class Decoder(nn.Module):
    """z (B, latent_dim) -> Bernoulli logits (B, 1, 28, 28) of p(x|z)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(latent_dim, 7 * 7 * 32)
        self.deconv1 = nn.ConvTranspose2d(32, 64, kernel_size=3, stride=2)  # 7 -> 15, cropped to 14
        self.deconv2 = nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2)  # 14 -> 29, cropped to 28
        self.deconv3 = nn.ConvTranspose2d(32, 1, kernel_size=3, stride=1, padding=1)  # 28 -> 28
        self.apply(_keras_init)

    def forward(self, z: Tensor) -> Tensor:
        h = torch.relu(self.dense(z)).view(-1, 32, 7, 7)
        # Keras "same" with stride 2 pads the forward conv only at the bottom/right (total padding 1), so its
        # transpose keeps the first 2n rows/columns of the full output: crop the last one, not the first.
        h = torch.relu(self.deconv1(h)[..., :-1, :-1])
        h = torch.relu(self.deconv2(h)[..., :-1, :-1])
        return self.deconv3(h)
