"""p(x|z): what the decoder's output means, as a `torch.distributions.Distribution` over whole images.

A likelihood turns the decoder network's output (B, num_params * C, H, W) into a distribution whose `log_prob(x)`
sums over every pixel (B,) and whose `mean` is an image in [0, 1]. It also says which data it can score
(`accepts`: binary pixels, or 8-bit levels scaled to [0, 1]) and how to turn nats into bits per dimension.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli as BernoulliDistribution
from torch.distributions import Categorical, Distribution, Independent, Normal, constraints
from torch.nn import functional as F

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
        return Independent(BernoulliDistribution(logits=full_precision(params), validate_args=False), 3)


def full_precision(params: Tensor) -> Tensor:
    """A decoder's output in float32 at least: bfloat16 (autocast) is widened, float64 kept."""
    return params if params.dtype == torch.float64 else params.float()


def split_params(params: Tensor, num_params: int) -> tuple[Tensor, ...]:
    """(B, P * C, H, W) -> P tensors (B, C, H, W): parameter p of channel c is output channel p * C + c."""
    return full_precision(params).unflatten(1, (num_params, -1)).unbind(1)


# 8-bit levels in bits/dim: one level's bin in [0, 1] is 1/256 wide, as in the dequantized-density convention
# (Theis et al. 2016), so a density's bits/dim are comparable with a probability mass's.
LOG_BIN_8BIT = -math.log(256.0)
# The Gaussian's log-scale range. At the lower end the density at the mean times a bin's width is
# 1 / (256 sigma sqrt(2 pi)) = 1: narrower, one level would get a "probability" above 1 and bits/dim could turn
# negative (the density grows without bound on pixels that are always 0, such as MNIST's border). sigma = 1 at the
# upper end is already wider than the data's whole range [0, 1].
GAUSSIAN_LOG_SCALE_MIN, GAUSSIAN_LOG_SCALE_MAX = LOG_BIN_8BIT - 0.5 * math.log(2 * math.pi), 0.0
VARIANCES = ("per_pixel", "shared")


class Gaussian(Likelihood):
    """Independent Normal pixels N(x; mean, sigma^2) with a learned variance, for 8-bit or binary data in [0, 1].

    `variance=per_pixel`: the decoder gives each pixel a mean and a log-scale (num_params = 2);
    `variance=shared`: one learned log-scale for every pixel of every image (num_params = 1).
    The mean is sigmoid(decoder output): the data lie in [0, 1], so a mean outside can only waste density, `mean`
    is then an image as the contract asks, and a decoder output of 0 is mid-grey (as a Bernoulli logit of 0 is).
    The log-scale is clamped to [GAUSSIAN_LOG_SCALE_MIN, 0]. Bits/dim count each 8-bit level as a bin of width
    1/256 (`log_bin`), so they compare with a discrete likelihood's.
    """

    name = "gaussian"
    accepts = (BINARY, EIGHT_BIT)
    log_bin = LOG_BIN_8BIT

    def __init__(self, variance: str = "per_pixel") -> None:
        super().__init__()
        if variance not in VARIANCES:
            raise ConfigError(f"model.likelihood.variance={variance} is not a variance kind; use per_pixel (the "
                              "decoder gives each pixel its own) or shared (one learned value).")
        self.variance = variance
        self.num_params = 2 if variance == "per_pixel" else 1
        if variance == "shared":
            self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, params: Tensor) -> Distribution:
        if self.variance == "per_pixel":
            mean_logits, log_scale = split_params(params, 2)
        else:
            mean_logits = full_precision(params)
            log_scale = self.log_scale.to(mean_logits.dtype).expand(params.shape)
        scale = log_scale.clamp(GAUSSIAN_LOG_SCALE_MIN, GAUSSIAN_LOG_SCALE_MAX).exp()
        return Independent(Normal(torch.sigmoid(mean_logits), scale, validate_args=False), 3)


# PixelCNN++'s constants (Salimans et al. 2017, their code's discretized_mix_logistic_loss): data in [-1, 1],
# where 8-bit level v sits at 2v / 255 - 1 with a bin of half-width 1/255; log-scales no smaller than -7; and a
# bin whose probability falls below 1e-5 (float32 cannot take the difference of two nearly equal CDFs) is
# scored as the density at its centre times its width 2/255 instead.
HALF_BIN = 1.0 / 255.0
LOGISTIC_LOG_SCALE_MIN = -7.0
MIN_BIN_PROBABILITY = 1e-5


class DiscretizedLogisticMixture(Distribution):
    """8-bit images as a mixture of discretized logistics per pixel and channel (Salimans et al. 2017, eq. 2).

    `logits`, `means`, `log_scales`: (..., K, C, H, W), the K components' weights (unnormalized), locations and
    log-scales on the [-1, 1] scale. Level v of a channel has probability sum_k pi_k [sigmoid((x + 1/255 - mu_k)
    / s_k) - sigmoid((x - 1/255 - mu_k) / s_k)] at x = 2v / 255 - 1, with the edges 0 and 255 taking the tails
    below and above (PixelCNN++'s edge cases). Unlike PixelCNN++, every channel has its own mixture and channels
    are independent given z: no shared mixture indicator, no linear channel coefficients (the decoder of a VAE
    already sees the whole image through z). Values are images in [0, 1] (uint8 / 255); `log_prob` sums over
    (C, H, W).
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.unit_interval, 3)
    has_rsample = False

    def __init__(self, logits: Tensor, means: Tensor, log_scales: Tensor, validate_args: bool | None = False) -> None:
        self.logits, self.means = logits, means
        self.log_scales = log_scales.clamp(min=LOGISTIC_LOG_SCALE_MIN)
        super().__init__(logits.shape[:-4], logits.shape[-3:], validate_args=validate_args)

    def component_log_probs(self, x: Tensor) -> Tensor:
        """log P(level x | component k) (..., K, C, H, W) for images x in [0, 1] (..., C, H, W)."""
        x = (2.0 * x - 1.0).unsqueeze(-4)
        centered = x - self.means
        inv_scale = torch.exp(-self.log_scales)
        plus_in = inv_scale * (centered + HALF_BIN)
        min_in = inv_scale * (centered - HALF_BIN)
        mid_in = inv_scale * centered
        log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): level 0 takes the tail below
        log_one_minus_cdf_min = -F.softplus(min_in)  # log (1 - sigmoid(min_in)): level 255 takes the tail above
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        log_pdf_mid = mid_in - self.log_scales - 2.0 * F.softplus(mid_in)  # the logistic's log-density at x
        # The clamp keeps log's gradient finite where torch.where takes the other branch.
        log_middle = torch.where(cdf_delta > MIN_BIN_PROBABILITY, torch.log(cdf_delta.clamp(min=1e-12)),
                                 log_pdf_mid + math.log(2.0 * HALF_BIN))  # density x width
        return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_middle))

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) summed over channels and pixels: (...,) for images x in [0, 1] (..., C, H, W)."""
        log_weights = torch.log_softmax(self.logits, dim=-4)
        return torch.logsumexp(self.component_log_probs(x) + log_weights, dim=-4).sum((-3, -2, -1))

    @property
    def mean(self) -> Tensor:
        """sum_k pi_k mu_k mapped to [0, 1], clamped (a logistic's mean is its location; the edges' mass is not
        moved, so the value is the continuous mixture's mean, clamped)."""
        location = (torch.softmax(self.logits, dim=-4) * self.means).sum(-4)
        return ((location + 1.0) / 2.0).clamp(0.0, 1.0)

    @torch.no_grad()
    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        """Images of 8-bit levels / 255: a component per pixel and channel, a logistic draw, rounded to a level."""
        shape = torch.Size(sample_shape)
        component = Categorical(logits=self.logits.movedim(-4, -1)).sample(shape).unsqueeze(-4)
        expanded = shape + self.means.shape

        def pick(values: Tensor) -> Tensor:
            return values.expand(expanded).gather(-4, component).squeeze(-4)

        u = torch.rand(component.shape[:-4] + component.shape[-3:], dtype=self.means.dtype,
                       device=self.means.device).clamp(1e-5, 1.0 - 1e-5)
        x = pick(self.means) + pick(self.log_scales).exp() * (torch.log(u) - torch.log1p(-u))
        return torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5) / 255.0


class DiscretizedLogistic(Likelihood):
    """8-bit pixels as a mixture of `components` discretized logistics per pixel and channel (PixelCNN++).

    The decoder gives each channel 3 * components maps: the mixture's logits, locations and log-scales.
    """

    name = "discretized_logistic"
    accepts = (EIGHT_BIT,)

    def __init__(self, components: int = 10) -> None:
        super().__init__()
        if not (isinstance(components, int) and components >= 1):
            raise ConfigError(f"model.likelihood.components={components} is not a number of mixture components; "
                              "use a positive integer like 10.")
        self.components = components
        self.num_params = 3 * components

    def forward(self, params: Tensor) -> Distribution:
        # output channel (kind * K + k) * C + c: kind 0, 1, 2 = logits, locations, log-scales of component k
        logits, means, log_scales = full_precision(params).unflatten(1, (3, self.components, -1)).unbind(1)
        return DiscretizedLogisticMixture(logits, means, log_scales)

