"""prior=standard | mog | vamp: densities checked against torch's own distributions and hand-written mixtures."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vae_lab.errors import ConfigError
from vae_lab.models import MLPVAE
from vae_lab.priors import MixtureOfGaussians, StandardNormal, VampPrior


def test_standard_normal_log_prob_and_samples() -> None:
    prior = StandardNormal(latent_dim=3)
    z = torch.tensor([[0.0, 1.0, -2.0]])
    assert prior.log_prob(z).item() == pytest.approx(-0.5 * (0 + 1 + 4) - 1.5 * math.log(2 * math.pi))
    assert prior.sample(7).shape == (7, 3)
    assert prior.log_prob(torch.zeros(4, 5, 3)).shape == (4, 5)  # (k, B) for k samples of a batch


def test_mixture_of_gaussians_is_torch_mixture_same_family_and_normalises() -> None:
    torch.manual_seed(0)
    prior = MixtureOfGaussians(latent_dim=2, components=3)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, 1.0, -1.0]))
        prior.log_scales.normal_(std=0.3)
    z = torch.randn(4, 6, 2)
    reference = MixtureSameFamily(Categorical(logits=prior.logits.detach()),
                                  Independent(Normal(prior.means.detach(), prior.log_scales.detach().exp()), 1))
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    # sum over a fine grid of exp(log p) * cell area: the density integrates to 1
    axis = torch.linspace(-8, 8, 801)
    grid = torch.cartesian_prod(axis, axis)
    mass = prior.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    assert prior.sample(5).shape == (5, 2)
    prior.log_prob(z).sum().backward()  # weights, means and scales are learned
    assert all(parameter.grad.abs().sum() > 0 for parameter in prior.parameters())


def test_vamp_prior_is_the_mean_of_the_posteriors_at_its_pseudo_inputs() -> None:
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=3, hidden=8, image_shape=(1, 4, 4),
                   prior={"_target_": "vae_lab.priors.VampPrior", "components": 4})
    prior = model.prior
    assert isinstance(prior, VampPrior) and prior.pseudo_inputs.shape == (4, 1, 4, 4)
    z = torch.randn(2, 5, 3)
    # By hand: log (1/K) sum_k N(z; mean_k, var_k), with (mean_k, logvar_k) = the encoder's output at sigmoid(u_k).
    with torch.no_grad():
        mean, logvar = model.encoder(torch.sigmoid(prior.pseudo_inputs)).chunk(2, dim=-1)
        per_component = torch.stack([
            (-0.5 * ((z - mean[k]) ** 2 / logvar[k].exp() + logvar[k] + math.log(2 * math.pi))).sum(-1)
            for k in range(4)])
        expected = torch.logsumexp(per_component, 0) - math.log(4)
        torch.testing.assert_close(prior.log_prob(z), expected)
    assert prior.sample(6).shape == (6, 3)
    # the model's log-weights use it: log p(x|z) + log p(z) - log q(z|x) with this p(z)
    x = torch.rand(2, 1, 4, 4).round()
    log_px, log_pz, log_qz, z = model.log_weight_terms(x, k=3)
    torch.testing.assert_close(log_pz, prior.log_prob(z))
    model.log_weights(x, 3).sum().backward()
    assert prior.pseudo_inputs.grad.abs().sum() > 0  # the pseudo-inputs are learned through the bound


@pytest.mark.parametrize("prior", [MixtureOfGaussians, VampPrior])
def test_mixture_priors_refuse_zero_components_naming_the_key(prior) -> None:
    arguments = {"latent_dim": 2, "components": 0} | ({"image_shape": (1, 4, 4)} if prior is VampPrior else {})
    with pytest.raises(ConfigError, match=r"^model\.prior\.components=0 "):
        prior(**arguments)
