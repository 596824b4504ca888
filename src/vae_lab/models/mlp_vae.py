"""The MLP VAE of Kingma & Welling (2014) as Burda et al. (2016) train it on binarized MNIST (784-200-200-50)."""

from __future__ import annotations

from typing import Annotated

from vae_lab.config_checks import Rule
from vae_lab.models.vae import VAE, Beta, KlEstimator, LatentDim, LearningRate, Objective, Samples
from vae_lab.networks.mlp import MLPDecoder, MLPEncoder

IMAGE_SHAPE = Rule(lambda v: len(v) == 3 and all(side >= 1 for side in v),
                   "[channels, height, width] of the images, like [1, 28, 28]")


class MLPVAE(VAE):
    def __init__(
        self,
        latent_dim: LatentDim = 50,
        lr: LearningRate = 1e-3,
        objective: Objective = "elbo",
        k: Samples = 1,
        beta: Beta = 1.0,
        kl: KlEstimator = "mc",
        hidden: Annotated[int, Rule(lambda v: v >= 1, "a positive integer like 200")] = 200,
        image_shape: Annotated[list[int], IMAGE_SHAPE] = (1, 28, 28),
    ) -> None:
        super().__init__(latent_dim, lr, objective, k, beta, kl)
        self.encoder = MLPEncoder(tuple(image_shape), latent_dim, hidden)
        self.decoder = MLPDecoder(tuple(image_shape), latent_dim, hidden)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.hparams.image_shape)
