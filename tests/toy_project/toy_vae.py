"""A researcher's own model, prior and dataset, outside vae_lab: this one Python file and one YAML each
(conf/model/toy.yaml, conf/prior/toy_vamp.yaml, conf/data/toy.yaml), used with
`python -m vae_lab.train hydra.searchpath=[file://<this folder>/conf] model=toy prior=toy_vamp data=toy`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from vae_lab.data.datamodule import BinarizedImages
from vae_lab.models.vae import VAE


class ToyVAE(VAE):
    """A one-hidden-layer VAE. The base class builds the posterior, prior and likelihood from the config; a model
    builds `encoder` (x -> the posterior's `num_inputs` features) and `decoder` (z -> the likelihood's parameters,
    (B, num_params * C, H, W)). Training, `evaluate`, `sample` and the pictures all go through them."""

    def __init__(self, hidden: int = 16, **common: Any) -> None:
        super().__init__(**common)
        channels, height, width = self.image_shape
        pixels, outputs = channels * height * width, self.likelihood.num_params * channels
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.Tanh(),
                                     nn.Linear(hidden, self.posterior.num_inputs))
        self.decoder = nn.Sequential(nn.Linear(self.latent_dim, hidden), nn.Tanh(),
                                     nn.Linear(hidden, outputs * height * width),
                                     nn.Unflatten(1, (outputs, height, width)))


class PseudoImagePrior(nn.Module):
    """A VampPrior (Tomczak & Welling 2018, eq. 9): p(z) = (1/K) sum_k q(z | u_k), the model's own posterior at K
    learned pseudo-images u_k. A prior is any module with `log_prob(z)`, `sample(n)` and `distribution()`; it may
    ask for `latent_dim` and `image_shape`, and a `bind(encode)` method is handed the model's encoder."""

    def __init__(self, image_shape: tuple[int, int, int], components: int = 4) -> None:
        super().__init__()
        # Random, so that the K components start apart (equal pseudo-images would get equal gradients).
        self.pseudo_images = nn.Parameter(torch.randn(components, *image_shape))
        self.encode: Any = None

    def bind(self, encode: Any) -> None:
        self.encode = encode

    def distribution(self) -> Distribution:
        q = self.encode(torch.sigmoid(self.pseudo_images))  # K Gaussians over z, one per pseudo-image
        weights = torch.zeros(len(self.pseudo_images), device=self.pseudo_images.device)
        return MixtureSameFamily(Categorical(logits=weights), q)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.distribution().log_prob(z)

    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,))


class ToyBars(BinarizedImages):
    """8 x 8 images of one bright horizontal bar, at a random row: 300 to train on, 1,000 to test."""

    def __init__(self, batch_size: int = 50, eval_batch_size: int = 1000, binarize: str = "static",
                 threshold: float = 0.5, val_size: int = 0, shuffle: bool = True, seed: int = 0,
                 binarize_seed: int = 0, data_device: str = "auto") -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, binarize=binarize,
                         threshold=threshold, val_size=val_size, shuffle=shuffle, seed=seed,
                         binarize_seed=binarize_seed, data_device=data_device)
        self.save_hyperparameters()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        rows = torch.randint(0, 8, (1300,), generator=torch.Generator().manual_seed(0))
        images = torch.zeros(1300, 1, 8, 8, dtype=torch.uint8)
        images[torch.arange(1300), 0, rows] = 255
        return images[:300], rows[:300], images[300:], rows[300:]
