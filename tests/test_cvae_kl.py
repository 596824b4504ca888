"""`model.kl`: the CVAE trains on the single-sample KL (the tutorial's) or the exact Gaussian KL."""

import pytest
import torch

from vae_lab.errors import VaeLabError
from vae_lab.models.cvae import CVAE
from vae_lab.objectives import analytic_kl


def test_analytic_kl_option_uses_the_closed_form_and_mc_the_sample() -> None:
    x = (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    analytic, mc = CVAE(latent_dim=4, kl="analytic"), CVAE(latent_dim=4)
    mc.load_state_dict(analytic.state_dict())
    with torch.no_grad():
        exact = analytic_kl(*analytic.encode(x))
        assert torch.allclose(analytic(x)[1].kl, exact)
        assert not torch.allclose(mc(x)[1].kl, exact)  # a single-sample estimate of the same quantity
    assert mc.hparams.kl == "mc"


def test_unknown_kl_option_is_refused_in_one_sentence() -> None:
    with pytest.raises(VaeLabError, match=r"^model.kl='exact' is not allowed; use one of mc, analytic\.$"):
        CVAE(kl="exact")
