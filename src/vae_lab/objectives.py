"""Variational bounds as pure functions of tensors (torch only).

Notation follows Kingma & Welling (2014): q(z|x) = N(mean, diag(exp(logvar))), p(z) = N(0, I),
p(x|z) = Bernoulli(sigmoid(logits)). Every function returns one value per example; callers average.
"""

from __future__ import annotations

import math
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
