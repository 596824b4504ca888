"""Analytic KL, analytic ELBO and the chunked IWAE bound, checked against sampling and a brute-force loop."""

import math
from collections.abc import Callable

import torch
from torch import Tensor

from vae_lab.objectives import (
    analytic_elbo,
    analytic_kl,
    importance_weighted_bound,
    monte_carlo_elbo,
    nested_importance_weighted_bounds,
    reparameterize,
)

LATENT, PIXELS = 3, 12


def tiny_problem(batch: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """Binary x, a q(z|x) that is *not* the true posterior (so the bounds differ), and a linear decoder."""
    g = torch.Generator().manual_seed(seed)
    weight, bias = 1.5 * torch.randn(LATENT, PIXELS, generator=g), torch.randn(PIXELS, generator=g)
    x = (torch.rand(1, PIXELS, generator=g) > 0.5).float().expand(batch, PIXELS)
    mean = torch.tensor([[0.8, -0.5, 0.3]]).expand(batch, LATENT)
    logvar = torch.tensor([[-1.0, -0.3, 0.4]]).expand(batch, LATENT)
    return x, mean, logvar, lambda z: z @ weight + bias


def slicer(noise: Tensor) -> Callable[[int], Tensor]:
    """draw_noise that hands out consecutive slices of pre-drawn noise (k, B, D)."""
    position = 0

    def draw(count: int) -> Tensor:
        nonlocal position
        position += count
        return noise[position - count : position]

    return draw


def test_monte_carlo_kl_agrees_with_analytic_kl_in_expectation() -> None:
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    eps = torch.randn(200_000, 4, 5, generator=g, dtype=torch.float64)
    z = reparameterize(mean.double(), logvar.double(), eps)
    x, logits = torch.zeros(200_000 * 4, 1), torch.zeros(200_000 * 4, 1)
    mc_kl = monte_carlo_elbo(x, logits, z.flatten(0, 1), mean.double().repeat(200_000, 1),
                             logvar.double().repeat(200_000, 1)).kl.view(200_000, 4)
    exact = analytic_kl(mean.double(), logvar.double())
    standard_error = mc_kl.std(dim=0) / math.sqrt(len(mc_kl))
    assert torch.all((mc_kl.mean(dim=0) - exact).abs() < 4 * standard_error), (mc_kl.mean(dim=0), exact)
    assert torch.all(exact > 0)


def test_analytic_kl_is_zero_for_the_prior_and_matches_the_formula() -> None:
    assert analytic_kl(torch.zeros(2, 7), torch.zeros(2, 7)).abs().max() == 0
    mean, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[math.log(4.0), 0.0]])
    # 0.5 * (4 + 1 - 1 - log 4) + 0.5 * (1 + 4 - 1 - 0)
    expected = 0.5 * (4.0 - math.log(4.0)) + 2.0
    assert math.isclose(analytic_kl(mean, logvar).item(), expected, rel_tol=1e-6)
    x, logits = torch.ones(1, 3), torch.zeros(1, 3)
    terms = analytic_elbo(x, logits, mean, logvar)
    assert math.isclose(terms.recon.item(), 3 * math.log(0.5), rel_tol=1e-6)
    assert math.isclose(terms.elbo.item(), 3 * math.log(0.5) - expected, rel_tol=1e-6)


def test_iwae_with_one_sample_is_the_single_sample_elbo_for_the_same_draw() -> None:
    x, mean, logvar, decode = tiny_problem(batch=50)
    eps = torch.randn(1, 50, LATENT, generator=torch.Generator().manual_seed(2))
    bound = importance_weighted_bound(x, mean, logvar, decode, 1, 1, slicer(eps))
    z = reparameterize(mean, logvar, eps[0])
    assert torch.allclose(bound, monte_carlo_elbo(x, decode(z), z, mean, logvar).elbo, atol=1e-5)


def test_iwae_is_above_the_elbo_on_average_and_rises_with_k() -> None:
    repeats = 4000  # independent estimates of the bound for the same x, one per batch row
    x, mean, logvar, decode = tiny_problem(batch=repeats)
    g = torch.Generator().manual_seed(3)
    means, errors = {}, {}
    for k in (1, 5, 50):
        bound = importance_weighted_bound(x, mean, logvar, decode, k, 16,
                                          lambda count: torch.randn(count, repeats, LATENT, generator=g))
        means[k], errors[k] = bound.mean().item(), bound.std().item() / math.sqrt(repeats)
    elbo = analytic_elbo(x, decode(reparameterize(mean, logvar, torch.randn(mean.shape, generator=g))), mean, logvar)
    elbo_mean, elbo_error = elbo.elbo.mean().item(), elbo.elbo.std().item() / math.sqrt(repeats)
    # k = 1 estimates the ELBO itself; more samples tighten the bound by many standard errors.
    assert abs(means[1] - elbo_mean) < 4 * math.hypot(errors[1], elbo_error)
    assert means[5] > means[1] + 4 * math.hypot(errors[5], errors[1])
    assert means[50] > means[5] + 4 * math.hypot(errors[50], errors[5])


def test_iwae_matches_a_brute_force_float64_loop() -> None:
    x, mean, logvar, decode = tiny_problem(batch=1)
    k = 7
    eps = torch.randn(k, 1, LATENT, generator=torch.Generator().manual_seed(4))
    bound = importance_weighted_bound(x, mean, logvar, decode, k, 3, slicer(eps)).item()

    weights = []
    for i in range(k):
        z = [mean[0, d].item() + math.exp(0.5 * logvar[0, d].item()) * eps[i, 0, d].item() for d in range(LATENT)]
        logits = decode(torch.tensor([z])).double()[0].tolist()
        log_px = 0.0
        for pixel, logit in zip(x[0].tolist(), logits, strict=True):
            p = 1.0 / (1.0 + math.exp(-logit))
            log_px += math.log(p) if pixel == 1.0 else math.log(1.0 - p)
        log_pz = sum(-0.5 * (zd**2 + math.log(2 * math.pi)) for zd in z)
        log_qz = sum(
            -0.5 * ((zd - mean[0, d].item()) ** 2 / math.exp(logvar[0, d].item()) + logvar[0, d].item()
                    + math.log(2 * math.pi))
            for d, zd in enumerate(z)
        )
        weights.append(math.exp(log_px + log_pz - log_qz))
    assert math.isclose(bound, math.log(sum(weights) / k), rel_tol=1e-5)


def test_chunking_gives_the_unchunked_value_for_the_same_draws() -> None:
    x, mean, logvar, decode = tiny_problem(batch=6)
    k = 40
    eps = torch.randn(k, 6, LATENT, generator=torch.Generator().manual_seed(5))
    whole = importance_weighted_bound(x, mean, logvar, decode, k, k, slicer(eps))
    for chunk_size in (1, 3, 7, 39, 1000):
        chunked = importance_weighted_bound(x, mean, logvar, decode, k, chunk_size, slicer(eps))
        assert torch.allclose(chunked, whole, rtol=0, atol=1e-4), chunk_size


def test_nested_bounds_are_the_bound_of_the_first_k_draws_for_any_chunk_size() -> None:
    x, mean, logvar, decode = tiny_problem(batch=5)
    eps = torch.randn(30, 5, LATENT, generator=torch.Generator().manual_seed(6))
    for chunk_size in (1, 4, 10, 30):
        bounds = nested_importance_weighted_bounds(x, mean, logvar, decode, (1, 10, 12, 30), chunk_size, slicer(eps))
        assert sorted(bounds) == [1, 10, 12, 30]
        for k, bound in bounds.items():
            alone = importance_weighted_bound(x, mean, logvar, decode, k, k, slicer(eps[:k]))
            assert torch.allclose(bound, alone, rtol=0, atol=1e-4), (chunk_size, k)
        # the largest k is exactly the plain bound with all the draws, whatever the smaller ones
        assert torch.equal(bounds[30], importance_weighted_bound(x, mean, logvar, decode, 30, chunk_size, slicer(eps)))
