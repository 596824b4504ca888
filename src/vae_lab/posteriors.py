"""q(z|x): the encoder network's output as a `torch.distributions.Distribution` over z.

A posterior module says how many features it needs from the encoder network (`num_inputs`) and turns them into
a distribution whose `log_prob` sums over the latent dimensions and whose `rsample((k,))` is reparameterized.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, TransformedDistribution, constraints
from torch.distributions.transforms import Transform
from torch.nn import functional as F

from vae_lab.errors import ConfigError
from vae_lab.networks.made import MADE

# exp(+-logvar) overflows float32 beyond ~88; trained encoders stay within a few units of 0, so this wide clamp
# changes nothing for normal values and only keeps a diverging run finite long enough to report.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


class Posterior(nn.Module):
    """Base class: `num_inputs` encoder features in, a distribution over `latent_dim` latents out."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    @property
    def num_inputs(self) -> int:
        return 2 * self.latent_dim

    def forward(self, features: Tensor) -> Distribution:
        raise NotImplementedError


def diagonal_gaussian(features: Tensor) -> Independent:
    """N(mean, diag(exp(logvar))) from features [mean, logvar] (B, 2D): the tutorial's q(z|x)."""
    mean, logvar = features.chunk(2, dim=-1)
    scale = (0.5 * logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)).exp()
    return Independent(Normal(mean, scale, validate_args=False), 1)


class Gaussian(Posterior):
    """q(z|x) = N(mean(x), diag(exp(logvar(x)))) (Kingma & Welling 2014)."""

    def forward(self, features: Tensor) -> Distribution:
        return diagonal_gaussian(features)


class IAFStep(Transform):
    """One step of inverse autoregressive flow: z' = sigma * z + (1 - sigma) * m, sigma = sigmoid(s), with
    (m, s) = MADE(z, h) (Kingma et al. 2016, eq. 14, the LSTM-style update).

    m_i and s_i depend on z_j only for j earlier than i, so the Jacobian dz'/dz is triangular with diagonal sigma:
    log |det| = sum_i log sigma_i, from the forward pass alone. `cache_size=1`: log_prob of the distribution's own
    rsample reuses the z that produced it; any other z' is inverted by `_inverse`.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, made: MADE, context: Tensor, cache_size: int = 1) -> None:
        super().__init__(cache_size=cache_size)
        self.made, self.context = made, context
        self._log_sigma: tuple[Tensor, Tensor] | None = None  # (z, log sigma at z) of the last _call

    def _call(self, z: Tensor) -> Tensor:
        m, s = self.made(z, self.context)
        self._log_sigma = (z, F.logsigmoid(s))
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m

    def _inverse(self, y: Tensor) -> Tensor:
        """z from z' = sigma(z) * z + (1 - sigma(z)) * m(z): the first latent in the MADE's order depends on the
        context only, so one pass gives it exactly; each further pass fixes the next one (D passes in all)."""
        z = y
        for _ in range(self.made.latent_dim):
            m, s = self.made(z, self.context)
            sigma = torch.sigmoid(s)
            z = (y - (1 - sigma) * m) / sigma
        return z

    def log_abs_det_jacobian(self, z: Tensor, y: Tensor) -> Tensor:
        if self._log_sigma is not None and self._log_sigma[0] is z:
            log_sigma = self._log_sigma[1]
        else:
            log_sigma = F.logsigmoid(self.made(z, self.context)[1])
        return log_sigma.sum(-1)

    def with_cache(self, cache_size: int = 1) -> IAFStep:
        return self if self._cache_size == cache_size else IAFStep(self.made, self.context, cache_size)


class IAF(Posterior):
    """q(z|x): a diagonal Gaussian N(mean(x), diag(exp(logvar(x)))) transformed by `steps` IAF steps
    (Kingma et al. 2016, section 4 and eq. 14).

    The encoder gives [mean, logvar, h] (2 * latent_dim + `context` features); every step's MADE (one ELU layer of
    `hidden` units) sees h. Successive steps use opposite orders of the latents (Kingma et al. reverse z between
    steps; reversing the MADE's order instead is the same flow, without a permutation of the output).
    log q(z|x) = log N(z_0) - sum over steps of sum_i log sigma_i (a TransformedDistribution).
    """

    def __init__(self, latent_dim: int, steps: int = 2, hidden: int = 200, context: int = 50) -> None:
        super().__init__(latent_dim)
        for key, value, example, least in (("steps", steps, 2, 1), ("hidden", hidden, 200, 1),
                                           ("context", context, 50, 0)):
            if not (isinstance(value, int) and value >= least):
                raise ConfigError(f"model.posterior.{key}={value} is not a number of "
                                  f"{'flow steps' if key == 'steps' else 'units'}; use an integer >= {least} like "
                                  f"{example}.")
        self.context_size = context
        self.mades = nn.ModuleList(MADE(latent_dim, hidden, context, reverse=bool(step % 2)) for step in range(steps))
        for made in self.mades:
            # sigma = sigmoid(s) starts near 1 (s's bias +2), so each step starts close to the identity
            # (Kingma et al. 2016, appendix: "initialized such that s_t is sufficiently positive, e.g. +1 or +2").
            nn.init.constant_(made.outputs.bias[latent_dim:], 2.0)

    @property
    def num_inputs(self) -> int:
        return 2 * self.latent_dim + self.context_size

    def forward(self, features: Tensor) -> Distribution:
        base = diagonal_gaussian(features[..., : 2 * self.latent_dim])
        context = features[..., 2 * self.latent_dim :]
        return TransformedDistribution(base, [IAFStep(made, context) for made in self.mades], validate_args=False)
