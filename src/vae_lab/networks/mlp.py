"""The fully connected VAE of Kingma & Welling (2014), in the configuration Burda et al. (2016) train on MNIST.

Encoder: D -> 200 -> 200 (tanh) -> mean and log-variance of `latent_dim` Gaussians; decoder: latent_dim -> 200 ->
200 (tanh) -> D Bernoulli logits, with D the number of pixels (784 for 1 x 28 x 28).
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(inputs, outputs))
        if index < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (B, *image_shape) -> mean, log-variance (B, latent_dim) of q(z|x)."""

    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, hidden: int = 200) -> None:
        super().__init__()
        self.net = _mlp([math.prod(image_shape), hidden, hidden, 2 * latent_dim])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.net(x.flatten(1)).chunk(2, dim=1)
        return mean, logvar


class MLPDecoder(nn.Module):
    """z (B, latent_dim) -> Bernoulli logits (B, *image_shape) of p(x|z)."""

    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, hidden: int = 200) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = _mlp([latent_dim, hidden, hidden, math.prod(image_shape)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.image_shape)
