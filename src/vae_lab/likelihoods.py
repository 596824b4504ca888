"""p(x|z): what the decoder's output means, as a `torch.distributions.Distribution` over whole images.

A likelihood turns the decoder network's output (B, num_params * C, H, W) into a distribution whose `log_prob(x)`
sums over every pixel (B,) and whose `mean` is an image in [0, 1]. It also says which data it can score
(`accepts`: binary pixels, or 8-bit levels scaled to [0, 1]) and how to turn nats into bits per dimension.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.distributions import Bernoulli as BernoulliDistribution
from torch.distributions import Distribution, Independent

from vae_lab.errors import ConfigError

BINARY, EIGHT_BIT = "binary", "8-bit"
# data.binarize -> the values a batch holds (vae_lab.data): static/dynamic give {0, 1}, none keeps uint8 / 255.
VALUES_OF_BINARIZE = {"static": BINARY, "dynamic": BINARY, "none": EIGHT_BIT}


class Likelihood(nn.Module):
    """Base class. Subclasses set `name` (the config choice), `accepts` and `num_params`, and define `forward`."""

    name: str = "likelihood"
    accepts: tuple[str, ...] = (BINARY, EIGHT_BIT)
    num_params: int = 1  # decoder outputs per image channel
    # log of the volume of one pixel's bin when log_prob is a density (8-bit data in [0, 1]: 1/256); 0 for a
    # probability mass, so bits/dim = -(log p(x) + D * log_bin) / (D ln 2) is the discrete code length either way.
    log_bin: float = 0.0

    def forward(self, params: Tensor) -> Distribution:
        raise NotImplementedError

    def check_data(self, binarize: str) -> None:
        """Refuse data whose values this likelihood cannot score, in one sentence."""
        values = VALUES_OF_BINARIZE.get(binarize)
        if values is not None and values not in self.accepts:
            others = {BINARY: "data.binarize=static or dynamic", EIGHT_BIT: "data.binarize=none"}
            fixes = " or ".join(others[kind] for kind in self.accepts)
            raise ConfigError(
                f"likelihood={self.name} takes {' or '.join(self.accepts)} pixels but data.binarize={binarize} gives "
                f"{values} ones; use {fixes}, or a likelihood for {values} data "
                f"({'likelihood=bernoulli' if values == BINARY else 'likelihood=gaussian or discretized_logistic'}).")

    def bits_per_dim(self, log_px: Tensor, num_dims: int) -> Tensor:
        """A bound in nats per image (B,) as bits per pixel and channel (B,)."""
        return -(log_px + num_dims * self.log_bin) / (num_dims * math.log(2.0))


class Bernoulli(Likelihood):
    """Independent Bernoulli pixels, the decoder's output their logits (the tutorial's likelihood)."""

    name = "bernoulli"
    accepts = (BINARY,)

    def forward(self, params: Tensor) -> Distribution:
        return Independent(BernoulliDistribution(logits=params.float(), validate_args=False), 3)


def split_params(params: Tensor, num_params: int) -> tuple[Tensor, ...]:
    """(B, P * C, H, W) -> P tensors (B, C, H, W): parameter p of channel c is output channel p * C + c."""
    return params.float().unflatten(1, (num_params, -1)).unbind(1)

