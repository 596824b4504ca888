"""MADE (Germain et al. 2015): a network whose i-th outputs depend only on the inputs before i, in pure torch.

Used by the IAF posterior (Kingma et al. 2016): outputs (m, s), each (..., D), where m_i and s_i see z_j only for j
earlier than i in the network's order, plus a context vector h (from the encoder) added to the hidden layer, which
every output may see.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out_features, in_features)."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """(z (..., D), h (..., context)) -> (m, s), each (..., D), autoregressive in z; one ELU hidden layer.

    `reverse=False` orders the latents 1..D, `reverse=True` D..1. Hidden unit j has degree j mod D: it sees the
    inputs of rank <= its degree (degree 0: the context alone), and output i sees hidden units of degree < rank(i),
    so output i depends on inputs of rank < rank(i) only: the Jacobian of any function of (m_i, s_i, z_i) is
    triangular.
    """

    def __init__(self, latent_dim: int, hidden: int, context: int, reverse: bool = False) -> None:
        super().__init__()
        rank = torch.arange(1, latent_dim + 1)
        if reverse:
            rank = rank.flip(0)
        degree = torch.arange(hidden) % latent_dim
        self.latent_dim = latent_dim
        self.inputs = MaskedLinear(degree[:, None] >= rank[None, :])
        self.context = nn.Linear(context, hidden) if context > 0 else None
        self.outputs = MaskedLinear(rank.repeat(2)[:, None] > degree[None, :])  # m, then s

    def forward(self, z: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        hidden = self.inputs(z)
        if self.context is not None and h is not None:
            hidden = hidden + self.context(h)
        m, s = self.outputs(F.elu(hidden)).split(self.latent_dim, dim=-1)
        return m, s
