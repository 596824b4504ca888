"""likelihood=bernoulli | gaussian | discretized_logistic: log-probabilities checked against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from vae_lab.errors import ConfigError
from vae_lab.likelihoods import (
    GAUSSIAN_LOG_SCALE_MIN,
    LOGISTIC_LOG_SCALE_MIN,
    Bernoulli,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    Gaussian,
)

LEVELS = torch.arange(256, dtype=torch.float64) / 255  # every 8-bit value as the data hold it


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


def normal_log_density(x: float, mean: float, scale: float) -> float:
    return -0.5 * ((x - mean) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------------------- Gaussian
def test_gaussian_per_pixel_log_prob_is_the_sum_of_normal_densities() -> None:
    likelihood = Gaussian("per_pixel")
    assert likelihood.num_params == 2
    # one image, one channel, 1 x 2 pixels; output channel 0 = mean logits, channel 1 = log-scales
    params = torch.tensor([[[[0.3, -1.2]], [[-0.5, -2.0]]]])
    x = torch.tensor([[[[0.4, 0.1]]]])
    p_x = likelihood(params)
    expected = (normal_log_density(0.4, sigmoid(0.3), math.exp(-0.5))
                + normal_log_density(0.1, sigmoid(-1.2), math.exp(-2.0)))
    assert p_x.log_prob(x).shape == (1,)
    assert p_x.log_prob(x).item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(p_x.mean, torch.tensor([[[[sigmoid(0.3), sigmoid(-1.2)]]]]))


def test_gaussian_log_scale_is_clamped_so_bits_per_dim_stay_non_negative() -> None:
    likelihood = Gaussian("per_pixel")
    params = torch.tensor([[[[0.0, 0.0]], [[-100.0, 100.0]]]])  # log-scales far below and above the range
    scale = likelihood(params).base_dist.scale
    torch.testing.assert_close(scale, torch.tensor([[[[math.exp(GAUSSIAN_LOG_SCALE_MIN), 1.0]]]]))
    # At its narrowest, a pixel exactly at its mean has density 256 = one level's bin of 1/256 taking mass 1: 0 bits.
    x = torch.full((1, 1, 1, 2), 0.5)
    log_px = likelihood(torch.tensor([[[[0.0, 0.0]], [[-100.0, -100.0]]]])).log_prob(x)
    assert log_px.item() == pytest.approx(2 * math.log(256), rel=1e-6)
    assert likelihood.bits_per_dim(log_px, 2).item() == pytest.approx(0.0, abs=1e-6)
    assert likelihood.bits_per_dim(torch.tensor([0.0]), 2).item() == pytest.approx(8.0)  # density 1 on [0, 1]


def test_gaussian_shared_variance_is_one_learned_scalar() -> None:
    likelihood = Gaussian("shared")
    assert likelihood.num_params == 1
    with torch.no_grad():
        likelihood.log_scale.fill_(-1.5)
    params = torch.tensor([[[[0.0, 2.0]]]], requires_grad=True)
    x = torch.tensor([[[[0.5, 1.0]]]])
    log_px = likelihood(params).log_prob(x)
    expected = normal_log_density(0.5, 0.5, math.exp(-1.5)) + normal_log_density(1.0, sigmoid(2.0), math.exp(-1.5))
    assert log_px.item() == pytest.approx(expected, rel=1e-6)
    log_px.sum().backward()
    assert likelihood.log_scale.grad is not None and likelihood.log_scale.grad.item() != 0


def test_gaussian_refuses_an_unknown_variance_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^model\.likelihood\.variance=diagonal "):
        Gaussian("diagonal")


@pytest.mark.parametrize(("likelihood", "binarize", "accepted"), [
    (Bernoulli(), "static", True), (Bernoulli(), "none", False),
    (Gaussian(), "dynamic", True), (Gaussian(), "none", True),
    (DiscretizedLogistic(), "none", True), (DiscretizedLogistic(), "static", False),
])
def test_each_likelihood_takes_the_data_values_it_can_score(likelihood, binarize: str, accepted: bool) -> None:
    if accepted:
        likelihood.check_data(binarize)
    else:
        with pytest.raises(ConfigError, match=rf"data\.binarize={binarize} "):
            likelihood.check_data(binarize)


# ------------------------------------------------------------------------------------ discretized logistic mixture
def random_mixture(components: int, seed: int, log_scale_shift: float = 0.0) -> DiscretizedLogisticMixture:
    """A mixture with batch shape (), event (1, 1, 1), parameters (K, 1, 1, 1) in float64."""
    g = torch.Generator().manual_seed(seed)
    shape = (components, 1, 1, 1)
    return DiscretizedLogisticMixture(torch.randn(shape, generator=g, dtype=torch.float64),
                                      torch.rand(shape, generator=g, dtype=torch.float64) * 2.4 - 1.2,
                                      torch.randn(shape, generator=g, dtype=torch.float64) - 2.0 + log_scale_shift)


@pytest.mark.parametrize(("components", "seed", "shift"), [(1, 0, 0.0), (5, 1, 0.0), (10, 2, -2.5), (5, 3, 2.0)])
def test_the_256_levels_probabilities_sum_to_one(components: int, seed: int, shift: float) -> None:
    mixture = random_mixture(components, seed, shift)
    log_p = mixture.log_prob(LEVELS.view(256, 1, 1, 1))
    assert log_p.shape == (256,)
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-6)


def direct_log_prob(x: float, logits: list[float], means: list[float], log_scales: list[float]) -> float:
    """PixelCNN++'s eq. 2 written out for one value, edges included, no numerical guard."""
    weights = [math.exp(logit) for logit in logits]
    total = 0.0
    for weight, mean, log_scale in zip(weights, means, log_scales, strict=True):
        scale = math.exp(max(log_scale, LOGISTIC_LOG_SCALE_MIN))
        upper = 1.0 if x > 0.999 else sigmoid((x + 1 / 255 - mean) / scale)
        lower = 0.0 if x < -0.999 else sigmoid((x - 1 / 255 - mean) / scale)
        total += weight / sum(weights) * (upper - lower)
    return math.log(total)


def test_log_prob_matches_a_direct_computation_and_sums_over_channels_and_pixels() -> None:
    g = torch.Generator().manual_seed(4)
    batch, components, channels, height, width = 2, 3, 3, 2, 2
    shape = (batch, components, channels, height, width)
    logits, means = torch.randn(shape, generator=g), torch.rand(shape, generator=g) * 2 - 1
    log_scales = torch.rand(shape, generator=g) * 2 - 3  # scales 0.05 .. 0.37: every bin above the 1e-5 guard
    log_scales[0, 0, 0, 0, 0] = -9.0  # below the -7 floor: clamped
    levels = torch.randint(0, 256, (batch, channels, height, width), generator=g)
    levels[0, :, 0, 0], levels[1, :, 1, 1] = 0, 255  # the edge cases
    x = levels.float() / 255
    mixture = DiscretizedLogisticMixture(logits, means, log_scales)
    assert mixture.batch_shape == (batch,) and mixture.event_shape == (channels, height, width)
    expected = [sum(direct_log_prob(2 * levels[b, c, i, j].item() / 255 - 1, logits[b, :, c, i, j].tolist(),
                                    means[b, :, c, i, j].tolist(), log_scales[b, :, c, i, j].tolist())
                    for c in range(channels) for i in range(height) for j in range(width)) for b in range(batch)]
    torch.testing.assert_close(mixture.log_prob(x), torch.tensor(expected), rtol=1e-5, atol=1e-4)


def test_gradients_are_finite_at_the_edges_and_for_far_or_sharp_components() -> None:
    params = torch.tensor([[-3.0, 0.0, 4.0],  # logits
                           [1.5, -1.5, 0.2],  # means (outside [-1, 1] too)
                           [-7.5, -6.0, 2.0]], dtype=torch.float32).view(3, 3, 1, 1, 1)
    params = params.expand(3, 3, 3, 1, 1).clone().requires_grad_()  # 3 channels: levels 0, 255 and 128
    x = torch.tensor([0.0, 1.0, 128 / 255]).view(3, 1, 1)
    log_p = DiscretizedLogisticMixture(*params.unbind(0)).log_prob(x)
    assert torch.isfinite(log_p)
    (grad,) = torch.autograd.grad(log_p, params)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_mean_is_the_mixture_location_in_zero_one_clamped() -> None:
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1, 1).expand(1, 2, 1, 1, 2)
    means = torch.tensor([[-0.6, 2.0], [0.2, 2.0]]).view(1, 2, 1, 1, 2)  # pixel 2's location is 2.0: above 1
    mixture = DiscretizedLogisticMixture(logits, means, torch.zeros(1, 2, 1, 1, 2))
    # pixel 1: 1/4 * -0.6 + 3/4 * 0.2 = 0 -> 0.5; pixel 2: clamped to 1
    torch.testing.assert_close(mixture.mean, torch.tensor([[[[0.5, 1.0]]]]))


def test_samples_are_8_bit_levels_near_a_sharp_component() -> None:
    location = 2 * 100 / 255 - 1  # level 100
    mixture = DiscretizedLogisticMixture(torch.zeros(4, 1, 1, 2, 2), torch.full((4, 1, 1, 2, 2), location),
                                         torch.full((4, 1, 1, 2, 2), -7.0))
    torch.manual_seed(0)
    samples = mixture.sample((3,))
    assert samples.shape == (3, 4, 1, 2, 2)
    torch.testing.assert_close(samples, torch.full_like(samples, 100 / 255))


def test_discretized_logistic_reads_logits_locations_and_log_scales_per_channel() -> None:
    likelihood = DiscretizedLogistic(components=2)
    assert likelihood.num_params == 6 and likelihood.log_bin == 0.0
    channels = 3
    params = torch.arange(6 * channels, dtype=torch.float32).view(1, 6 * channels, 1, 1)
    p_x = likelihood(params)
    # output channel (kind * K + k) * C + c
    assert p_x.logits[0, 1, 2].item() == (0 * 2 + 1) * channels + 2
    assert p_x.means[0, 0, 1].item() == (1 * 2 + 0) * channels + 1
    assert p_x.log_scales[0, 1, 0].item() == (2 * 2 + 1) * channels + 0
    assert p_x.log_prob(torch.zeros(1, channels, 1, 1)).shape == (1,)


def test_discretized_logistic_refuses_a_bad_number_of_components() -> None:
    with pytest.raises(ConfigError, match=r"^model\.likelihood\.components=0 "):
        DiscretizedLogistic(components=0)
