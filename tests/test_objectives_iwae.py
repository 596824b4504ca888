"""The IWAE bound from a model's log_weights: checked against a brute-force loop, against the ELBO, and chunked."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from vae_lab.models import MLPVAE
from vae_lab.objectives import iwae_bound, nested_iwae_bounds

IMAGE = (1, 3, 4)  # 12 pixels


def tiny_model(seed: int = 0) -> tuple[MLPVAE, Tensor]:
    """A small MLP VAE whose q(z|x) is *not* the true posterior (so the bounds differ), and one binary image."""
    torch.manual_seed(seed)
    model = MLPVAE(latent_dim=3, hidden=6, image_shape=IMAGE).double()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.8)
    return model, torch.rand(1, *IMAGE, dtype=torch.float64).round()


def slicer(values: Tensor) -> Callable[[int], Tensor]:
    """log_weights(count) that hands out consecutive slices of pre-drawn log-weights (k, B)."""
    position = 0

    def draw(count: int) -> Tensor:
        nonlocal position
        position += count
        return values[position - count : position]

    return draw


def test_iwae_bound_is_the_log_mean_of_the_weights() -> None:
    torch.testing.assert_close(iwae_bound(torch.full((7, 2), -3.0)), torch.full((2,), -3.0))
    assert iwae_bound(torch.tensor([[0.0], [math.log(3.0)]])).item() == pytest.approx(math.log(2.0))
    one = torch.tensor([[-4.0, -5.0]])
    assert torch.equal(iwae_bound(one), one[0])  # k = 1: the single-sample ELBO


def test_iwae_from_log_weights_matches_a_brute_force_float64_loop() -> None:
    model, x = tiny_model()
    k = 7
    torch.manual_seed(4)
    bound = iwae_bound(model.log_weights(x, k)).item()

    torch.manual_seed(4)
    features = model.encoder(x)[0].tolist()
    mean, logvar = features[:3], features[3:]
    eps = torch.randn(k, 1, 3, dtype=torch.float64)  # what q.rsample((k,)) draws
    weights = []
    for i in range(k):
        z = [mean[d] + math.exp(0.5 * logvar[d]) * eps[i, 0, d].item() for d in range(3)]
        logits = model.decoder(torch.tensor([z], dtype=torch.float64))[0].flatten().tolist()
        log_px = sum(math.log(1 / (1 + math.exp(-logit))) if pixel == 1.0 else math.log(1 - 1 / (1 + math.exp(-logit)))
                     for pixel, logit in zip(x.flatten().tolist(), logits, strict=True))
        log_pz = sum(-0.5 * (zd**2 + math.log(2 * math.pi)) for zd in z)
        log_qz = sum(-0.5 * ((zd - mean[d]) ** 2 / math.exp(logvar[d]) + logvar[d] + math.log(2 * math.pi))
                     for d, zd in enumerate(z))
        weights.append(math.exp(log_px + log_pz - log_qz))
    assert bound == pytest.approx(math.log(sum(weights) / k), rel=1e-9)


def test_iwae_is_above_the_elbo_on_average_and_rises_with_k() -> None:
    repeats = 4000  # independent estimates of the bound for the same x, one per batch row
    model, x = tiny_model(seed=1)
    x = x.expand(repeats, *IMAGE)
    torch.manual_seed(3)
    means, errors = {}, {}
    with torch.no_grad():
        q = model.encode(x)
        for k in (1, 5, 50):
            bound = iwae_bound(model.log_weights(x, k, posterior=q))
            means[k], errors[k] = bound.mean().item(), bound.std().item() / math.sqrt(repeats)
        elbo = model(x)[1].elbo  # the objective's own single-sample ELBO
    elbo_mean, elbo_error = elbo.mean().item(), elbo.std().item() / math.sqrt(repeats)
    # k = 1 estimates the ELBO itself; more samples tighten the bound by many standard errors.
    assert abs(means[1] - elbo_mean) < 4 * math.hypot(errors[1], elbo_error)
    assert means[5] > means[1] + 4 * math.hypot(errors[5], errors[1])
    assert means[50] > means[5] + 4 * math.hypot(errors[50], errors[5])


def test_iwae_objective_trains_on_the_bound_of_its_k_samples() -> None:
    model, x = tiny_model(seed=2)
    model.hparams.objective, model.hparams.k = "iwae", 6
    torch.manual_seed(8)
    bound, terms = model(x)
    torch.manual_seed(8)
    log_weights = model.log_weights(x, 6)
    torch.testing.assert_close(bound, iwae_bound(log_weights))
    torch.testing.assert_close(terms.elbo, log_weights[0])  # the logged ELBO is the first sample's


def test_nested_bounds_are_the_bound_of_the_first_k_draws_for_any_chunk_size() -> None:
    model, x = tiny_model(seed=3)
    torch.manual_seed(6)
    with torch.no_grad():
        drawn = model.log_weights(x.expand(5, *IMAGE), 30)  # (30, 5)
    for chunk_size in (1, 4, 10, 30, 1000):
        bounds = nested_iwae_bounds(slicer(drawn), (1, 10, 12, 30), chunk_size, 5, drawn)
        assert sorted(bounds) == [1, 10, 12, 30]
        for k, bound in bounds.items():
            torch.testing.assert_close(bound, iwae_bound(drawn[:k]), rtol=0, atol=1e-10)
