"""p(z): the prior over the latent code, as a module whose `distribution()` is a `torch.distributions` object.

Every prior has `log_prob(z)` (summed over the latent dimensions), `sample(n)` and `distribution()`. The ELBO,
the IWAE bound, `evaluate`, the sample grids and `sample` all go through these, so a new prior is one class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from vae_lab.errors import ConfigError


class Prior(nn.Module):
    """Base class: subclasses define `distribution()`; `standard_normal` says whether it is N(0, I)."""

    standard_normal = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def distribution(self) -> Distribution:
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        return self.distribution().log_prob(z)

    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,))


class StandardNormal(Prior):
    """p(z) = N(0, I) (Kingma & Welling 2014)."""

    standard_normal = True

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.register_buffer("zero", torch.zeros(()), persistent=False)  # follows the model's device and dtype

    def distribution(self) -> Distribution:
        loc = self.zero.expand(self.latent_dim)
        return Independent(Normal(loc, torch.ones_like(loc), validate_args=False), 1)


class MixtureOfGaussians(Prior):
    """p(z) = sum_k pi_k N(mu_k, diag(sigma_k^2)) with learned weights, means and scales."""

    def __init__(self, latent_dim: int, components: int = 10) -> None:
        super().__init__(latent_dim)
        if components < 1:
            raise ConfigError(f"model.prior.components={components} is not a number of components; use a positive "
                              "integer like 10.")
        # Means spread at random so the components start apart; unit scales, equal weights.
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scales = nn.Parameter(torch.zeros(components, latent_dim))

    def distribution(self) -> Distribution:
        components = Independent(Normal(self.means, self.log_scales.exp(), validate_args=False), 1)
        return MixtureSameFamily(Categorical(logits=self.logits, validate_args=False), components,
                                 validate_args=False)


class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k), with K learned pseudo-inputs u_k (Tomczak & Welling 2018, eq. 9).

    The pseudo-inputs are images: sigmoid of learned parameters, so they stay in the data's [0, 1]. The model
    binds its own `encode` (`bind`), so the prior always uses the current encoder.
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], components: int = 500) -> None:
        super().__init__(latent_dim)
        if components < 1:
            raise ConfigError(f"model.prior.components={components} is not a number of pseudo-inputs; use a "
                              "positive integer like 500.")
        # Pseudo-inputs start as mid-grey images with a little noise (sigmoid(0) = 0.5), as random images do there.
        self.pseudo_inputs = nn.Parameter(0.01 * torch.randn(components, *image_shape))
        self._encode: Callable[[Tensor], Distribution] | None = None

    def bind(self, encode: Callable[[Tensor], Distribution]) -> None:
        object.__setattr__(self, "_encode", encode)  # a plain attribute: the model is not a submodule of its prior

    def distribution(self) -> Distribution:
        if self._encode is None:
            raise RuntimeError("VampPrior.bind(model.encode) must be called before the prior is used.")
        return self.mixture(self._encode(torch.sigmoid(self.pseudo_inputs)))  # q(z|u_k) for each k: batch (K,)

    @staticmethod
    def mixture(q: Distribution) -> Distribution:
        """The equal-weight mixture of a batch of diagonal Gaussians q (batch (K,), event (D,))."""
        if not isinstance(q, Independent) or not isinstance(q.base_dist, Normal):
            raise ConfigError("prior=vamp needs a Gaussian posterior (posterior=gaussian); its mixture components "
                              "are q(z|u_k).")
        weights = Categorical(logits=q.base_dist.loc.new_zeros(q.batch_shape), validate_args=False)
        return MixtureSameFamily(weights, q, validate_args=False)


def log_mean_exp(values: Tensor, dim: int) -> Tensor:
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])
