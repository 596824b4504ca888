"""The tutorial's convolutional VAE: conv encoder (32, 64 filters, stride 2), dense + 3 transposed-conv decoder.

Any channels and any size that is a multiple of 4 (MNIST's 1 x 28 x 28 by default; CIFAR-10's 3 x 32 x 32).
"""

from __future__ import annotations

from typing import Any

from vae_lab.models.vae import VAE
from vae_lab.networks.conv import Decoder, Encoder


class CVAE(VAE):
    def __init__(self, **common: Any) -> None:
        """`common`: the `VAE` arguments (latent_dim, image_shape, lr, objective, prior, likelihood, ...)."""
        super().__init__(**common)
        channels = self.image_shape[0]
        if self.image_shape[1] % 4 or self.image_shape[2] % 4:
            from vae_lab.errors import ConfigError

            raise ConfigError(f"model.image_shape={list(self.image_shape)}: the conv decoder doubles its size twice, "
                              "so height and width must be multiples of 4 (28 or 32, say); use model=mlp_vae for "
                              "other sizes.")
        self.encoder = Encoder(self.image_shape, self.posterior.num_inputs)
        self.decoder = Decoder(self.latent_dim, self.image_shape, channels * self.likelihood.num_params)
