"""The MLP VAE of Kingma & Welling (2014) as Burda et al. (2016) train it on binarized MNIST (784-200-200-50)."""

from __future__ import annotations

from typing import Any

from vae_lab.errors import ConfigError
from vae_lab.models.vae import VAE
from vae_lab.networks.mlp import MLPDecoder, MLPEncoder


class MLPVAE(VAE):
    def __init__(self, hidden: int = 200, **common: Any) -> None:
        """`hidden`: units in each of the two tanh layers; `common`: the `VAE` arguments."""
        super().__init__(**common)
        if not (isinstance(hidden, int) and hidden >= 1):
            raise ConfigError(f"model.hidden={hidden} is not a number of units; use a positive integer like 200.")
        self.encoder = MLPEncoder(self.image_shape, self.posterior.num_inputs, hidden)
        self.decoder = MLPDecoder(self.image_shape, self.latent_dim, hidden,
                                  self.image_shape[0] * self.likelihood.num_params)
