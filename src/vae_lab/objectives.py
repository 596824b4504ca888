"""Variational bounds as pure functions of log-weights (torch only).

A model's `log_weights(x, k)` gives, for k samples z_i ~ q(z|x), the (k, B) tensor
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)
whatever its prior, posterior and likelihood. Every bound here is a function of those terms, one value per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


class ElboTerms(NamedTuple):
    """Per-example parts of the ELBO: elbo = recon - kl."""

    elbo: Tensor
    recon: Tensor  # log p(x|z)
    kl: Tensor  # log q(z|x) - log p(z) (single-sample estimate) or KL(q || p) (closed form)


def elbo_terms(log_px: Tensor, kl: Tensor) -> ElboTerms:
    """The ELBO log p(x|z) - KL (Kingma & Welling 2014, eq. 3 / eq. 7 with a closed-form KL)."""
    return ElboTerms(elbo=log_px - kl, recon=log_px, kl=kl)


def penalized_elbo(terms: ElboTerms, beta: float | Tensor, free_bits: float) -> Tensor:
    """recon - beta * max(KL, free_bits), per example.

    beta != 1 is the beta-VAE (Higgins et al. 2017, eq. 4); a beta rising from 0 to 1 is KL warm-up (Bowman et al.
    2016; Sonderby et al. 2016). Free bits (Kingma et al. 2016, eq. 15, one group: the whole z) stop the KL's
    gradient while its batch mean is below `free_bits` nats, so the optimizer does not collapse q(z|x) onto p(z).
    beta = 1 and free_bits = 0 give the ELBO itself.
    """
    kl = terms.kl
    if free_bits > 0:
        kl = torch.where(kl.mean() >= free_bits, kl, torch.full_like(kl, free_bits))
    if isinstance(beta, (int, float)) and beta == 1 and free_bits <= 0:
        return terms.elbo
    return terms.recon - beta * kl


def warmup_beta(beta: float, progress_epochs: float, warmup_epochs: float) -> float:
    """beta scaled by a linear ramp from 0 to 1 over `warmup_epochs` (Tomczak & Welling 2018 use 100)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, progress_epochs / warmup_epochs)


def iwae_bound(log_weights: Tensor) -> Tensor:
    """log (1/k) sum_i w_i from log-weights (k, B): the IWAE bound (Burda et al. 2016, eq. 8); k = 1 is the ELBO."""
    return torch.logsumexp(log_weights, dim=0) - math.log(len(log_weights))


def nested_iwae_bounds(
    log_weights: Callable[[int], Tensor], ks: tuple[int, ...], chunk_size: int, batch: int, like: Tensor
) -> dict[int, Tensor]:
    """The IWAE bound for each k in `ks` from the first k of the same max(ks) samples, per example.

    `log_weights(c)` returns the next c samples' log-weights (c, B). Samples are drawn `chunk_size` at a time and
    folded into a running logsumexp, so memory stays at one chunk whatever k is. Nested subsets of one set of draws
    give the curve over k at no cost beyond the largest k (Burda et al. 2016, section 5.2, plot the bound against k).
    """
    wanted = sorted(set(ks))
    total = torch.full((batch,), -math.inf, dtype=like.dtype, device=like.device)
    bounds: dict[int, Tensor] = {}
    num_samples = wanted[-1]
    for start in range(0, num_samples, chunk_size):
        count = min(chunk_size, num_samples - start)
        chunk = log_weights(count).to(total.dtype)
        for k in (k for k in wanted if start < k < start + count):  # a k inside this chunk: its first k - start
            bounds[k] = torch.logaddexp(total, torch.logsumexp(chunk[: k - start], dim=0)) - math.log(k)
        total = torch.logaddexp(total, torch.logsumexp(chunk, dim=0))
        for k in (k for k in wanted if k == start + count):  # a k at this chunk's end: the running total itself
            bounds[k] = total - math.log(k)
    return bounds
