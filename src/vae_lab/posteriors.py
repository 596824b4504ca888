"""q(z|x): the encoder network's output as a `torch.distributions.Distribution` over z.

A posterior module says how many features it needs from the encoder network (`num_inputs`) and turns them into
a distribution whose `log_prob` sums over the latent dimensions and whose `rsample((k,))` is reparameterized.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

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
