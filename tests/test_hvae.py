"""model=hvae: Burda et al.'s two stochastic layers behind the one-latent contract (encode, prior, decode)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vae_lab.errors import ConfigError
from vae_lab.models import HVAE
from vae_lab.priors import MixtureOfGaussians, StandardNormal


def diagonal_normal_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((z - mean) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)


def linear_sizes(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_hvae_has_burdas_two_layer_architecture() -> None:
    model = HVAE()
    assert model.latent_dim == 150 and model.hparams.latent_dims == (100, 50)
    assert linear_sizes(model.encoder) == [(784, 100), (100, 100), (100, 200)]  # q(z1|x): mean, logvar
    assert linear_sizes(model.encoder2) == [(100, 50), (50, 50), (50, 100)]  # q(z2|z1)
    assert linear_sizes(model.prior.layer) == [(50, 50), (50, 50), (50, 200)]  # p(z1|z2)
    assert linear_sizes(model.decoder) == [(100, 100), (100, 100), (100, 784)]  # p(x|z1)
    assert isinstance(model.prior.top, StandardNormal) and model.prior.top.latent_dim == 50


def test_encode_is_one_distribution_over_z1_z2_with_the_chained_log_prob() -> None:
    torch.manual_seed(0)
    model = HVAE()
    x = torch.rand(4, 1, 28, 28).round()
    q = model.encode(x)
    assert q.batch_shape == (4,) and q.event_shape == (150,)
    z = q.rsample((3,))
    assert z.shape == (3, 4, 150)
    z1, z2 = z[..., :100], z[..., 100:]
    with torch.no_grad():
        mean1, logvar1 = model.encoder(x.flatten(1)).chunk(2, -1)
        mean2, logvar2 = model.encoder2(z1).chunk(2, -1)
        expected = diagonal_normal_log_density(z1, mean1, logvar1) + diagonal_normal_log_density(z2, mean2, logvar2)
        torch.testing.assert_close(q.log_prob(z), expected)  # the cached q(z2|z1) of its own sample
        torch.testing.assert_close(q.log_prob(z.clone()), expected)  # and computed afresh
        torch.testing.assert_close(model.posterior_mean(x), torch.cat([mean1, model.encoder2(mean1).chunk(2, -1)[0]],
                                                                      -1))


def test_prior_is_p_z2_times_p_z1_given_z2_and_samples_top_down() -> None:
    torch.manual_seed(1)
    model = HVAE()
    z = torch.randn(2, 5, 150)
    z1, z2 = z[..., :100], z[..., 100:]
    with torch.no_grad():
        mean, logvar = model.prior.layer(z2).chunk(2, -1)
        expected = diagonal_normal_log_density(z2, torch.zeros(50), torch.zeros(50)) + diagonal_normal_log_density(
            z1, mean, logvar)
        torch.testing.assert_close(model.prior.log_prob(z), expected)
    samples = model.prior.sample(4000)
    assert samples.shape == (4000, 150)
    assert samples[:, 100:].mean().abs() < 0.05 and (samples[:, 100:].std() - 1).abs() < 0.05  # z2 ~ N(0, I)
    # One torch Distribution over [z1, z2], with no closed-form KL to any q (so kl=analytic is refused)
    with torch.no_grad():
        torch.testing.assert_close(model.prior.distribution().log_prob(z), expected)
    with pytest.raises(NotImplementedError):
        torch.distributions.kl_divergence(model.encode(torch.zeros(1, 1, 28, 28)), model.prior.distribution())


def test_decode_reads_z1_only_and_the_contract_methods_work() -> None:
    torch.manual_seed(2)
    model = HVAE()
    z = torch.randn(3, 150)
    other = z.clone()
    other[:, 100:] = torch.randn(3, 50)
    torch.testing.assert_close(model.decode_mean(z), model.decode_mean(other))
    x = torch.rand(3, 1, 28, 28).round()
    log_px, log_pz, log_qz, z = model.log_weight_terms(x, k=4)
    torch.testing.assert_close(model.log_weights(x, 4).shape, torch.Size([4, 3]))
    assert torch.isfinite(log_px + log_pz - log_qz).all()
    assert model.sample(2).shape == (2, 1, 28, 28) and model.reconstruct(x).shape == (3, 1, 28, 28)
    bound, terms = model(x)
    assert bound.shape == (3,) and torch.isfinite(terms.kl).all()


def test_mog_is_a_p_z2_prior_of_the_hvae() -> None:
    model = HVAE(prior={"_target_": "vae_lab.priors.MixtureOfGaussians", "components": 3})
    assert isinstance(model.prior.top, MixtureOfGaussians) and model.prior.top.means.shape == (3, 50)
    assert model.log_weights(torch.rand(2, 1, 28, 28).round(), 2).shape == (2, 2)


@pytest.mark.parametrize(("arguments", "key"), [
    ({"kl": "analytic"}, "model.kl=analytic"),
    ({"prior": {"_target_": "vae_lab.priors.VampPrior", "components": 3}}, "model=hvae takes prior="),
    ({"posterior": {"_target_": "vae_lab.posteriors.IAF"}}, "model=hvae takes posterior="),
    ({"latent_dim": 50}, "model.latent_dim=50"),
    ({"latent_dims": [100]}, "model.latent_dims=[100]"),
])
def test_what_the_hvae_cannot_compute_is_refused_in_one_sentence(arguments: dict, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        HVAE(**arguments)
    message = str(error.value)
    assert message.startswith(key) and message.endswith(".") and "\n" not in message
