"""Variational bounds as pure functions of tensors (torch only).

Notation follows Kingma & Welling (2014): q(z|x) = N(mean, diag(exp(logvar))), p(z) = N(0, I),
p(x|z) = Bernoulli(sigmoid(logits)). Every function returns one value per example; callers average.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


class ElboTerms(NamedTuple):
    """Per-example parts of the ELBO: elbo = recon - kl."""

    elbo: Tensor
    recon: Tensor  # log p(x|z)
    kl: Tensor  # log q(z|x) - log p(z) (single-sample estimate) or KL(q || p) (analytic)


def reparameterize(mean: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mean + sigma * eps, eps ~ N(0, I) (the reparameterization trick)."""
    return mean + torch.exp(0.5 * logvar) * eps


def log_normal_pdf(sample: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(sample; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * ((sample - mean) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI).sum(dim=-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x|z) for binary x, summed over every pixel (all dimensions after the first)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def monte_carlo_elbo(x: Tensor, logits: Tensor, z: Tensor, mean: Tensor, logvar: Tensor) -> ElboTerms:
    """The tutorial's single-sample estimate: log p(x|z) + log p(z) - log q(z|x), with z ~ q(z|x)."""
    recon = bernoulli_log_likelihood(logits, x)
    kl = log_normal_pdf(z, mean, logvar) - log_normal_pdf(z, torch.zeros_like(z), torch.zeros_like(z))
    return ElboTerms(elbo=recon - kl, recon=recon, kl=kl)


def analytic_kl_per_dimension(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean_d, exp(logvar_d)) || N(0, 1)) of each latent dimension d: (..., D), the terms `analytic_kl` sums."""
    return 0.5 * (torch.exp(logvar) + mean**2 - 1.0 - logvar)


def analytic_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, diag(exp(logvar))) || N(0, I)) in closed form (Kingma & Welling 2014, appendix B)."""
    return analytic_kl_per_dimension(mean, logvar).sum(dim=-1)


def analytic_elbo(x: Tensor, logits: Tensor, mean: Tensor, logvar: Tensor) -> ElboTerms:
    """log p(x|z) with z ~ q(z|x), minus the exact KL: same expectation as `monte_carlo_elbo`, lower variance."""
    recon = bernoulli_log_likelihood(logits, x)
    kl = analytic_kl(mean, logvar)
    return ElboTerms(elbo=recon - kl, recon=recon, kl=kl)


def beta_elbo(terms: ElboTerms, beta: float) -> Tensor:
    """recon - beta * kl: the beta-VAE objective (Higgins et al. 2017, eq. 4); beta = 1 is the ELBO itself."""
    return terms.elbo if beta == 1 else terms.recon - beta * terms.kl


def iwae_bound(log_weights: Tensor) -> Tensor:
    """log (1/k) sum_i w_i from log-weights (k, B): the IWAE bound (Burda et al. 2016, eq. 8); k = 1 is the ELBO."""
    return torch.logsumexp(log_weights, dim=0) - math.log(len(log_weights))


def log_importance_weights(x: Tensor, logits: Tensor, z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log p(x|z_i) + log p(z_i) - log q(z_i|x) for k samples per example: z (k, B, D), logits (k, B, ...) -> (k, B)."""
    k, batch = z.shape[:2]
    x_repeated = x.unsqueeze(0).expand(k, *x.shape)
    log_px = bernoulli_log_likelihood(logits.flatten(0, 1), x_repeated.flatten(0, 1)).view(k, batch)
    return log_px + log_normal_pdf(z, torch.zeros_like(z), torch.zeros_like(z)) - log_normal_pdf(z, mean, logvar)


def importance_weighted_bound(
    x: Tensor,
    mean: Tensor,
    logvar: Tensor,
    decode: Callable[[Tensor], Tensor],
    num_samples: int,
    chunk_size: int,
    draw_noise: Callable[[int], Tensor],
) -> Tensor:
    """The IWAE bound log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016, eq. 8), per example.

    Samples are decoded `chunk_size` at a time and folded into a running logsumexp, so memory stays at one chunk
    whatever k is. `decode` maps z (N, D) to logits (N, ...); `draw_noise(c)` returns the next c draws of standard
    normal noise, shaped (c, B, D): the same draws give the same bound for any chunk_size.
    """
    return nested_importance_weighted_bounds(x, mean, logvar, decode, (num_samples,), chunk_size, draw_noise)[
        num_samples
    ]


def nested_importance_weighted_bounds(
    x: Tensor,
    mean: Tensor,
    logvar: Tensor,
    decode: Callable[[Tensor], Tensor],
    ks: tuple[int, ...],
    chunk_size: int,
    draw_noise: Callable[[int], Tensor],
) -> dict[int, Tensor]:
    """The IWAE bound for each k in `ks` from the first k of the same max(ks) samples, per example.

    Nested subsets of one set of draws: the curve over k costs no decoder pass beyond the largest k, and its
    points differ only by the samples added (Burda et al. 2016, section 5.2, plot the bound against k). The value
    for max(ks) is exactly `importance_weighted_bound` with max(ks) samples and the same draws.
    """
    wanted = sorted(set(ks))
    total = torch.full_like(mean[:, 0], -math.inf)
    bounds: dict[int, Tensor] = {}
    num_samples = wanted[-1]
    for start in range(0, num_samples, chunk_size):
        count = min(chunk_size, num_samples - start)
        z = reparameterize(mean, logvar, draw_noise(count))  # (count, B, D) by broadcasting
        logits = decode(z.flatten(0, 1))
        logits = logits.view(count, len(x), *logits.shape[1:])
        log_weights = log_importance_weights(x, logits, z, mean, logvar)
        for k in (k for k in wanted if start < k < start + count):  # a k inside this chunk: its first k - start
            bounds[k] = torch.logaddexp(total, torch.logsumexp(log_weights[: k - start], dim=0)) - math.log(k)
        total = torch.logaddexp(total, torch.logsumexp(log_weights, dim=0))
        for k in (k for k in wanted if k == start + count):  # a k at this chunk's end: the running total itself
            bounds[k] = total - math.log(k)
    return bounds
