"""Burda et al. (2016)'s VAE with two stochastic layers (their section 5), in the shape of every vae_lab model.

    q(z1|x)   Gaussian, x -> 100 -> 100 (tanh) -> mean and log-variance of z1 (100)
    q(z2|z1)  Gaussian, z1 -> 50 -> 50 (tanh) -> z2 (50)
    p(z2)     the prior component (standard: N(0, I); mog works too)
    p(z1|z2)  Gaussian, z2 -> 50 -> 50 (tanh) -> z1
    p(x|z1)   the likelihood component, z1 -> 100 -> 100 (tanh) -> its parameters
The model's latent code is z = [z1, z2] (latent_dim = 150): `encode(x)` is one distribution over it whose
log_prob is log q(z1|x) + log q(z2|z1), and `prior.log_prob(z)` is log p(z2) + log p(z1|z2), so `log_weights`,
the objectives, `evaluate` and `sample` work unchanged. torch has no closed-form KL between such joint
distributions, so `kl=analytic` is refused; a VampPrior would need q(z2|u), which this posterior does not have in
closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, constraints

from vae_lab.errors import ConfigError
from vae_lab.models.vae import VAE, Spec, build
from vae_lab.networks.mlp import MLPDecoder, mlp
from vae_lab.posteriors import Gaussian, diagonal_gaussian
from vae_lab.priors import Prior

STANDARD_PRIOR = {"_target_": "vae_lab.priors.StandardNormal"}


class TwoLayers(Distribution):
    """A distribution over z = [z1, z2] drawn one layer after the other: `first` over the layer drawn first, and
    `given(a)` the other layer's distribution given that layer's value a.

    The posterior draws z1 first (q(z1|x), then q(z2|z1)); the prior draws z2 first (p(z2), then p(z1|z2)):
    `first_is_z1` says which. log_prob(z) = log first(a) + log given(a)(b). `mean` is a deterministic code, not the
    exact mean: the first layer's mean, then the other's mean given it.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, first: Distribution, given: Callable[[Tensor], Distribution], sizes: tuple[int, int],
                 first_is_z1: bool) -> None:
        self.first, self.given, self.sizes, self.first_is_z1 = first, given, sizes, first_is_z1
        self.has_rsample = first.has_rsample
        self._last: tuple[Tensor, Distribution] | None = None  # (z, given(a)) of the last rsample
        super().__init__(first.batch_shape, torch.Size([sum(sizes)]), validate_args=False)

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([a, b] if self.first_is_z1 else [b, a], dim=-1)

    def _split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z1, z2 = z.split(self.sizes, dim=-1)
        return (z1, z2) if self.first_is_z1 else (z2, z1)

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        a = self.first.rsample(torch.Size(sample_shape))
        second = self.given(a)
        z = self._join(a, second.rsample())
        self._last = (z, second)
        return z

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            a = self.first.sample(torch.Size(sample_shape))
            return self._join(a, self.given(a).sample())

    def log_prob(self, z: Tensor) -> Tensor:
        a, b = self._split(z)
        second = self._last[1] if self._last is not None and self._last[0] is z else self.given(a)
        return self.first.log_prob(a) + second.log_prob(b)

    @property
    def mean(self) -> Tensor:
        a = self.first.mean
        return self._join(a, self.given(a).mean)


class TwoLayerPrior(Prior):
    """p(z1, z2) = p(z2) p(z1|z2) over z = [z1, z2]: `top` is p(z2), a Gaussian layer (z2 -> hidden -> hidden,
    tanh) gives p(z1|z2). Its `distribution()` has no closed-form KL with any q, so kl=analytic is refused."""

    def __init__(self, top: Prior, latent_dims: tuple[int, int], hidden: int) -> None:
        super().__init__(sum(latent_dims))
        self.top, self.latent_dims = top, latent_dims
        self.layer = mlp([latent_dims[1], hidden, hidden, 2 * latent_dims[0]])

    def conditional(self, z2: Tensor) -> Independent:
        """p(z1|z2)."""
        return diagonal_gaussian(self.layer(z2))

    def distribution(self) -> Distribution:
        return TwoLayers(self.top.distribution(), self.conditional, self.latent_dims, first_is_z1=False)


def two_positive(key: str, values: Sequence[int], example: str) -> tuple[int, int]:
    values = tuple(values) if isinstance(values, Sequence) else (values,)
    if len(values) != 2 or not all(isinstance(value, int) and value >= 1 for value in values):
        raise ConfigError(f"model.{key}={list(values)} is not two positive integers (layer 1, layer 2); use e.g. "
                          f"{example}.")
    return values  # type: ignore[return-value]


class HVAE(VAE):
    def __init__(self, latent_dims: Sequence[int] = (100, 50), hidden: Sequence[int] = (100, 50),
                 **common: Any) -> None:
        """`latent_dims`: the sizes of z1 and z2; `hidden`: the units of the two tanh layers under each of them;
        `common`: the `VAE` arguments, where latent_dim, if given, must be sum(latent_dims)."""
        dims = two_positive("latent_dims", latent_dims, "[100, 50]")
        two_positive("hidden", hidden, "[100, 50]")
        # The model's z is [z1, z2]. Set in `common` itself, so the saved hyper-parameters hold it too.
        if common.setdefault("latent_dim", sum(dims)) != sum(dims):
            raise ConfigError(f"model.latent_dim={common['latent_dim']} must be the sum of model.latent_dims="
                              f"{list(dims)} (z = [z1, z2]); use model.latent_dim={sum(dims)}.")
        super().__init__(**common)
        if type(self.posterior) is not Gaussian:
            raise ConfigError(f"model=hvae takes posterior=gaussian (its q(z1|x) and q(z2|z1) are Gaussian layers), "
                              f"not {type(self.posterior).__name__}; use posterior=gaussian.")
        (d1, d2), (h1, h2) = dims, tuple(hidden)
        self.encoder = mlp([math.prod(self.image_shape), h1, h1, 2 * d1])  # x -> q(z1|x)
        self.encoder2 = mlp([d1, h2, h2, 2 * d2])  # z1 -> q(z2|z1)
        self.decoder = MLPDecoder(self.image_shape, d1, h1, self.image_shape[0] * self.likelihood.num_params)

    def build_prior(self, spec: Spec, image_shape: tuple[int, int, int]) -> Prior:
        dims = tuple(self.hparams.latent_dims)
        top = build(spec, STANDARD_PRIOR, "prior", latent_dim=dims[1], image_shape=image_shape)
        if hasattr(top, "bind"):
            raise ConfigError(f"model=hvae takes prior=standard or mog as its p(z2), not {type(top).__name__}: a "
                              "VampPrior's q(z2|u) has no closed form under q(z1|x) q(z2|z1); use prior=standard.")
        return TwoLayerPrior(top, dims, tuple(self.hparams.hidden)[1])

    def encode(self, x: Tensor) -> Distribution:
        """q(z1, z2 | x) = q(z1|x) q(z2|z1) over z = [z1, z2]."""
        first = diagonal_gaussian(self.encoder(x.flatten(1)))
        sizes = tuple(self.hparams.latent_dims)
        return TwoLayers(first, lambda z1: diagonal_gaussian(self.encoder2(z1)), sizes, first_is_z1=True)

    def decode(self, z: Tensor) -> Distribution:
        """p(x|z1): the likelihood from the first layer of z = [z1, z2]."""
        return self.likelihood(self.decoder(z[..., : self.hparams.latent_dims[0]]))

