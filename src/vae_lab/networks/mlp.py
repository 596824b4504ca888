"""The fully connected VAE of Kingma & Welling (2014), in the configuration Burda et al. (2016) train on MNIST.

Encoder: D -> 200 -> 200 (tanh) -> the posterior's features (mean and log-variance of `latent_dim` Gaussians);
decoder: latent_dim -> 200 -> 200 (tanh) -> the likelihood's parameters of D pixels (784 for 1 x 28 x 28).
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with tanh between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (B, *image_shape) -> `out_features` features for q(z|x)."""

    def __init__(self, image_shape: tuple[int, ...], out_features: int, hidden: int = 200) -> None:
        super().__init__()
        self.net = mlp([math.prod(image_shape), hidden, hidden, out_features])

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """z (B, latent_dim) -> likelihood parameters (B, out_channels, H, W) of p(x|z)."""

    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, hidden: int = 200,
                 out_channels: int | None = None) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.out_shape = (out_channels or channels, height, width)
        self.net = mlp([latent_dim, hidden, hidden, math.prod(self.out_shape)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.out_shape)
