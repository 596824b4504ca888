"""`model.kl`: the single-sample KL (the tutorial's) or the closed form from torch.distributions, refused where
torch has none."""

from __future__ import annotations

import math

import pytest
import torch

from vae_lab.errors import ConfigError
from vae_lab.models import CVAE, MLPVAE
from vae_lab.posteriors import Gaussian
from vae_lab.priors import StandardNormal

VAMP = {"_target_": "vae_lab.priors.VampPrior", "components": 3}
MOG = {"_target_": "vae_lab.priors.MixtureOfGaussians", "components": 3}
IAF = {"_target_": "vae_lab.posteriors.IAF"}


def test_closed_form_kl_of_the_gaussian_posterior_and_standard_prior_is_the_textbook_formula() -> None:
    q = Gaussian(latent_dim=2)(torch.tensor([[1.0, -2.0, math.log(4.0), 0.0]]))  # means (1, -2), variances (4, 1)
    prior = StandardNormal(latent_dim=2)
    # 0.5 * (var + mean^2 - 1 - log var) per dimension: 0.5 * (4 + 1 - 1 - log 4) + 0.5 * (1 + 4 - 1 - 0)
    kl = torch.distributions.kl_divergence(q, prior.distribution())
    assert kl.item() == pytest.approx(0.5 * (4.0 - math.log(4.0)) + 2.0, rel=1e-6)
    # ... which the single-sample estimate log q(z) - log p(z) has as its mean (within 4 standard errors)
    torch.manual_seed(1)
    z = q.rsample((200_000,))
    estimates = q.log_prob(z) - prior.log_prob(z)
    assert abs(estimates.mean().item() - kl.item()) < 4 * estimates.std().item() / math.sqrt(len(estimates))


def test_analytic_option_uses_the_closed_form_and_mc_the_sample() -> None:
    x = (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    analytic, mc = CVAE(latent_dim=4, kl="analytic"), CVAE(latent_dim=4)
    mc.load_state_dict(analytic.state_dict())
    with torch.no_grad():
        mean, logvar = analytic.encoder(x).chunk(2, dim=-1)
        exact = 0.5 * (logvar.exp() + mean**2 - 1 - logvar).sum(-1)
        torch.testing.assert_close(analytic(x)[1].kl, exact)
        assert not torch.allclose(mc(x)[1].kl, exact)  # a single-sample estimate of the same quantity
    assert mc.hparams.kl == "mc"


@pytest.mark.parametrize("arguments", [{"prior": MOG}, {"prior": VAMP}, {"posterior": IAF}],
                         ids=["prior=mog", "prior=vamp", "posterior=iaf"])
def test_analytic_kl_without_a_closed_form_is_refused_when_the_model_is_built(arguments: dict) -> None:
    with pytest.raises(ConfigError, match=r"^model\.kl=analytic needs a closed-form KL") as error:
        MLPVAE(latent_dim=3, hidden=8, image_shape=(1, 4, 4), kl="analytic", **arguments)
    assert str(error.value).endswith("use model.kl=mc.")
    MLPVAE(latent_dim=3, hidden=8, image_shape=(1, 4, 4), kl="mc", **arguments)  # the estimate works with any


def test_vamp_prior_with_a_flow_posterior_is_refused_when_the_model_is_built() -> None:
    with pytest.raises(ConfigError, match=r"^prior=vamp needs a Gaussian posterior"):
        MLPVAE(latent_dim=3, hidden=8, image_shape=(1, 4, 4), prior=VAMP, posterior=IAF)


def test_unknown_kl_option_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^model\.kl=exact "):
        CVAE(kl="exact")
