"""The tutorial's convolutional VAE: conv encoder (32, 64 filters, stride 2), dense + 3 transposed-conv decoder."""

from __future__ import annotations

from vae_lab.models.vae import VAE, Beta, KlEstimator, LatentDim, LearningRate, Objective, Samples
from vae_lab.networks.conv import Decoder, Encoder


class CVAE(VAE):
    def __init__(
        self,
        latent_dim: LatentDim = 50,
        lr: LearningRate = 1e-4,
        objective: Objective = "elbo",
        k: Samples = 1,
        beta: Beta = 1.0,
        kl: KlEstimator = "mc",
    ) -> None:
        super().__init__(latent_dim, lr, objective, k, beta, kl)
        self.encoder = Encoder(latent_dim)
        self.decoder = Decoder(latent_dim)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)  # the conv stack's strides are fixed to MNIST's size
