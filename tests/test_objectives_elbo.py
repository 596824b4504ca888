"""The ELBO from log_weights' terms, and its variants: beta, KL warm-up and free bits."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from vae_lab.errors import ConfigError
from vae_lab.likelihoods import Bernoulli
from vae_lab.models import MLPVAE
from vae_lab.objectives import elbo_terms, penalized_elbo, warmup_beta
from vae_lab.posteriors import Gaussian
from vae_lab.priors import StandardNormal

TINY = {"latent_dim": 2, "hidden": 8, "image_shape": (1, 4, 4)}


def test_single_sample_elbo_matches_a_hand_computation() -> None:
    # One example, 2 pixels, 1 latent dimension: every term written out by hand.
    x = torch.tensor([[[[1.0, 0.0]]]])
    q = Gaussian(latent_dim=1)(torch.tensor([[0.5, math.log(0.25)]]))  # mean 0.5, standard deviation 0.5
    z = torch.tensor([[1.5]])  # 0.5 + 0.5 * 2
    p_x = Bernoulli()(torch.tensor([[[[0.0, 2.0]]]]))
    log_px, log_pz, log_qz = p_x.log_prob(x), StandardNormal(1).log_prob(z), q.log_prob(z)

    expected_px = math.log(0.5) + math.log(1.0 - 1.0 / (1.0 + math.exp(-2.0)))
    expected_pz = -0.5 * (1.5**2 + math.log(2 * math.pi))
    expected_qz = -0.5 * ((1.5 - 0.5) ** 2 / 0.25 + math.log(0.25) + math.log(2 * math.pi))
    terms = elbo_terms(log_px, log_qz - log_pz)
    assert terms.recon.item() == pytest.approx(expected_px, rel=1e-6)
    assert terms.kl.item() == pytest.approx(expected_qz - expected_pz, rel=1e-6)
    assert terms.elbo.item() == pytest.approx(expected_px + expected_pz - expected_qz, rel=1e-6)


def test_log_weights_sum_over_pixels_and_latents_per_example() -> None:
    model = MLPVAE(latent_dim=4, hidden=8)
    for layer in (model.decoder.net[-1], model.encoder.net[-1]):  # logits 0; q = N(0, I) = p
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    log_px, log_pz, log_qz, z = model.log_weight_terms(torch.ones(3, 1, 28, 28), k=2)
    assert z.shape == (2, 3, 4)
    torch.testing.assert_close(log_px, torch.full((2, 3), 784 * math.log(0.5)))
    torch.testing.assert_close(log_qz, log_pz)  # q == p: the KL estimate is 0 at every z
    torch.testing.assert_close(model.log_weights(torch.ones(3, 1, 28, 28), 2), log_px)


def test_beta_weights_the_kl_and_beta_one_is_the_elbo_itself() -> None:
    terms = elbo_terms(torch.tensor([-10.0, -20.0]), torch.tensor([3.0, 5.0]))
    torch.testing.assert_close(penalized_elbo(terms, 0.5, 0.0), torch.tensor([-11.5, -22.5]))
    assert penalized_elbo(terms, 1.0, 0.0) is terms.elbo


def test_free_bits_stop_the_kl_gradient_below_the_threshold() -> None:
    recon = torch.tensor([-10.0, -20.0])
    for kl_values, free_bits, gradient in (([1.0, 2.0], 2.0, 0.0), ([3.0, 2.0], 2.0, -1.0)):
        kl = torch.tensor(kl_values, requires_grad=True)
        bound = penalized_elbo(elbo_terms(recon, kl), 1.0, free_bits)
        (grad,) = torch.autograd.grad(bound.sum(), kl)
        torch.testing.assert_close(grad, torch.full((2,), gradient))  # batch mean 1.5 < 2: no pull towards p(z)
        if gradient == 0.0:
            torch.testing.assert_close(bound, recon - free_bits)


def test_warmup_beta_rises_linearly_then_stays() -> None:
    assert [warmup_beta(1.0, epochs, 4.0) for epochs in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert warmup_beta(0.5, 2.0, 4.0) == 0.25 and warmup_beta(0.5, 0.0, 0.0) == 0.5


class RecordingBeta(MLPVAE):
    """An MLPVAE that remembers the beta of every training step."""

    def __init__(self, **arguments) -> None:
        super().__init__(**arguments)
        self.betas: list[float] = []

    def forward(self, x, beta=None):
        if beta is not None:
            self.betas.append(beta)
        return super().forward(x, beta)


def test_kl_warmup_ramps_beta_linearly_by_optimizer_step() -> None:
    torch.manual_seed(0)
    model = RecordingBeta(**TINY, warmup_epochs=2, beta=1.0)
    data = DataLoader(TensorDataset(torch.rand(16, 1, 4, 4).round(), torch.zeros(16)), batch_size=4)  # 4 steps/epoch
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    assert model.betas == [step / 8 for step in range(8)] + [1.0] * 4


@pytest.mark.parametrize("option", ["warmup_epochs=2", "free_bits=0.5", "beta=0.5"])
def test_iwae_takes_no_warmup_free_bits_or_beta(option: str) -> None:
    key, value = option.split("=")
    with pytest.raises(ConfigError, match=rf"model\.{key}={value}"):
        MLPVAE(**TINY, objective="iwae", k=3, **{key: float(value)})


def test_free_bits_change_the_trained_bound_not_the_logged_elbo() -> None:
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)).round()
    model = MLPVAE(**TINY, free_bits=1000.0)  # far above any KL here: the KL term is the constant 1000
    torch.manual_seed(2)
    bound, terms = model(x)
    torch.testing.assert_close(bound, terms.recon - 1000.0)
    torch.testing.assert_close(terms.elbo, terms.recon - terms.kl)
