"""posterior=gaussian | iaf: shapes, reparameterized samples, and the IAF's change of variables checked by autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import TransformedDistribution

from vae_lab.errors import ConfigError
from vae_lab.networks.made import MADE
from vae_lab.posteriors import IAF, Gaussian, IAFStep

LATENT, CONTEXT = 5, 3


def test_gaussian_posterior_is_the_reparameterized_diagonal_normal() -> None:
    features = torch.tensor([[0.5, -1.0, math.log(0.25), 0.0]])  # mean (0.5, -1), variance (0.25, 1)
    q = Gaussian(latent_dim=2)(features)
    assert q.batch_shape == (1,) and q.event_shape == (2,)
    torch.manual_seed(0)
    z = q.rsample((3,))
    torch.manual_seed(0)
    eps = torch.randn(3, 1, 2)
    torch.testing.assert_close(z, torch.tensor([0.5, -1.0]) + torch.tensor([0.5, 1.0]) * eps)
    expected = [sum(-0.5 * ((z[i, 0, d].item() - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
                    for d, (m, s) in enumerate(((0.5, 0.5), (-1.0, 1.0)))) for i in range(3)]
    torch.testing.assert_close(q.log_prob(z), torch.tensor(expected).view(3, 1))


def iaf(steps: int = 2, seed: int = 0) -> IAF:
    torch.manual_seed(seed)
    posterior = IAF(LATENT, steps=steps, hidden=16, context=CONTEXT).double()
    for made in posterior.mades:  # weights and biases away from their initial values, so every term matters
        for parameter in made.parameters():
            torch.nn.init.normal_(parameter, std=0.7)
    return posterior


def features(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 2 * LATENT + CONTEXT, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def test_iaf_takes_mean_logvar_and_context_and_samples_k_by_batch() -> None:
    posterior = iaf()
    assert posterior.num_inputs == 2 * LATENT + CONTEXT
    q = posterior(features(4))
    assert isinstance(q, TransformedDistribution) and len(q.transforms) == 2
    z = q.rsample((7,))
    assert z.shape == (7, 4, LATENT) and q.log_prob(z).shape == (7, 4)
    assert z.requires_grad  # reparameterized: gradients reach the MADE weights and the features


def test_log_prob_of_its_own_samples_is_the_change_of_variables_value() -> None:
    posterior = iaf()
    f = features(3)
    q = posterior(f)
    torch.manual_seed(5)
    z = q.rsample((2,))
    # By hand: z0 = mean + std * eps, each step z <- sigma * z + (1 - sigma) * m; log q = log N(z0) - sum log sigma.
    torch.manual_seed(5)
    mean, logvar, h = f[:, :LATENT], f[:, LATENT : 2 * LATENT], f[:, 2 * LATENT :]
    step = mean + (0.5 * logvar).exp() * torch.randn(2, 3, LATENT, dtype=torch.float64)
    log_q = (-0.5 * ((step - mean) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)
    for made in posterior.mades:
        m, s = made(step, h)
        sigma = torch.sigmoid(s)
        step = sigma * step + (1 - sigma) * m
        log_q = log_q - sigma.log().sum(-1)
    torch.testing.assert_close(z, step)
    torch.testing.assert_close(q.log_prob(z), log_q)
    # A z it did not draw (a copy, so the cache cannot answer) is inverted by _inverse: the same value.
    torch.testing.assert_close(q.log_prob(z.detach().clone()), log_q.detach())


@pytest.mark.parametrize("reverse", [False, True])
def test_each_step_has_a_triangular_jacobian_whose_log_det_is_log_abs_det_jacobian(reverse: bool) -> None:
    torch.manual_seed(2)
    made = MADE(LATENT, hidden=12, context=CONTEXT, reverse=reverse).double()
    for parameter in made.parameters():
        torch.nn.init.normal_(parameter, std=0.7)
    h = torch.randn(CONTEXT, dtype=torch.float64)
    step = IAFStep(made, h)
    z = torch.randn(LATENT, dtype=torch.float64)
    jac = jacobian(step._call, z)
    triangle = torch.triu(jac, diagonal=1) if not reverse else torch.tril(jac, diagonal=-1)
    assert triangle.abs().max() == 0  # z'_i depends only on z_j earlier in the step's order
    assert (torch.tril(jac, -1) if not reverse else torch.triu(jac, 1)).abs().max() > 0  # ... and does depend on them
    torch.testing.assert_close(step.log_abs_det_jacobian(z, step(z)), torch.linalg.slogdet(jac).logabsdet)


def test_inverse_undoes_each_step() -> None:
    posterior = iaf(steps=3)
    h = features(6)[:, 2 * LATENT :]
    z = torch.randn(6, LATENT, dtype=torch.float64)
    for made in posterior.mades:
        step = IAFStep(made, h, cache_size=0)
        torch.testing.assert_close(step._inverse(step._call(z)), z, rtol=0, atol=1e-10)


def test_iaf_refuses_a_bad_number_of_steps_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^model\.posterior\.steps=0 "):
        IAF(LATENT, steps=0)
