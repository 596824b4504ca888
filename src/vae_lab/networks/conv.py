"""The tutorial's convolutional encoder and decoder, in pure torch (no Lightning), for any channels and size.

Shapes follow the Keras layers of the TensorFlow "Convolutional Variational Autoencoder" tutorial:
encoder 28 -> 13 -> 6 ("valid" stride-2 convs), decoder 7 -> 14 -> 28 ("same" stride-2 transposed convs); a 3 x 32
x 32 image goes 32 -> 15 -> 7 and 8 -> 16 -> 32. The decoder's last layer has one output per likelihood parameter
and image channel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _keras_init(module: nn.Module) -> None:
    # Keras' defaults (Glorot-uniform kernels, zero biases), so training starts where the tutorial's does.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


PAD_BEFORE = (1, 0, 1, 0)  # one zero column on the left, one zero row on top (F.pad order: W then H)


def one_channel_transposed_conv(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """`F.conv_transpose2d(h, weight, bias, padding=1)` for a (C, 1, 3, 3) weight, as one GEMM and 9 shifted adds.

    With one output channel, oneDNN runs that convolution as a matrix-vector product per pixel (~10 GFLOP/s on a
    2-core CPU); the (9, C) @ (C, B*H*W) GEMM of all kernel taps is ~3x faster (README, "Performance").
    """
    batch, channels, height, width = h.shape
    pixels = h.permute(0, 2, 3, 1).reshape(-1, channels)  # a free view of channels-last input
    taps = F.pad((weight.reshape(channels, 9).t() @ pixels.t()).view(9, batch, height, width), (1, 1, 1, 1))
    # Tap (ki, kj) of input pixel (p, q) lands on output pixel (p + ki - 1, q + kj - 1).
    out = bias.expand(batch, height, width).clone()
    for ki in range(3):
        for kj in range(3):
            out += taps[3 * ki + kj, :, 2 - ki : 2 - ki + height, 2 - kj : 2 - kj + width]
    return out.unsqueeze(1)


class _PhaseTransposedConvReLU(torch.autograd.Function):
    """relu(Keras-"same" stride-2 3x3 transposed conv) of channels-last `h` as one GEMM and its 4 output phases.

    Output pixel (2m + py, 2l + px) gets kernel row py from input row m, plus (py = 0 only) row 2 from input row
    m - 1; the same for columns. So one (B*n*n, C_in) @ (C_in, 9*C_out) product gives every tap, and nine shifted
    adds assemble the four phases: the 2n x 2n output Keras keeps, nothing computed for the row and column it drops.
    Backward is the two transposed GEMMs. The GEMMs run in `dtype` (bf16 under autocast), the adds in that dtype.
    """

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        batch, c_in, n, _ = h.shape
        c_out = weight.shape[1]
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else h.dtype
        pixels = h.permute(0, 2, 3, 1).reshape(-1, c_in).to(dtype)  # a free view of channels-last input
        w = weight.permute(0, 2, 3, 1).reshape(c_in, 9 * c_out).to(dtype)  # [ci, (ki, kj, co)]
        with torch.autocast("cpu", enabled=False):
            y = (pixels @ w).view(batch, n, n, 3, 3, c_out)
            b = bias.to(dtype)
            out = y.new_empty(batch, n, 2, n, 2, c_out)
            out[:, :, 0, :, 0] = y[:, :, :, 0, 0] + b
            out[:, 1:, 0, :, 0] += y[:, :-1, :, 2, 0]
            out[:, :, 0, 1:, 0] += y[:, :, :-1, 0, 2]
            out[:, 1:, 0, 1:, 0] += y[:, :-1, :-1, 2, 2]
            out[:, :, 0, :, 1] = y[:, :, :, 0, 1] + b
            out[:, 1:, 0, :, 1] += y[:, :-1, :, 2, 1]
            out[:, :, 1, :, 0] = y[:, :, :, 1, 0] + b
            out[:, :, 1, 1:, 0] += y[:, :, :-1, 1, 2]
            out[:, :, 1, :, 1] = y[:, :, :, 1, 1] + b
            out.relu_()
        ctx.save_for_backward(pixels, w, out)
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        return out.view(batch, 2 * n, 2 * n, c_out).permute(0, 3, 1, 2)  # (B, C_out, 2n, 2n), channels-last

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pixels, w, out = ctx.saved_tensors
        batch, n, _, _, _, c_out = out.shape
        c_in = pixels.shape[1]
        g = grad.permute(0, 2, 3, 1).reshape(out.shape).to(out.dtype) * (out > 0)  # through the ReLU
        gy = g.new_zeros(batch, n, n, 3, 3, c_out)  # the adjoint of the nine shifted adds: nine shifted copies
        gy[:, :, :, 0, 0] = g[:, :, 0, :, 0]
        gy[:, :-1, :, 2, 0] = g[:, 1:, 0, :, 0]
        gy[:, :, :-1, 0, 2] = g[:, :, 0, 1:, 0]
        gy[:, :-1, :-1, 2, 2] = g[:, 1:, 0, 1:, 0]
        gy[:, :, :, 0, 1] = g[:, :, 0, :, 1]
        gy[:, :-1, :, 2, 1] = g[:, 1:, 0, :, 1]
        gy[:, :, :, 1, 0] = g[:, :, 1, :, 0]
        gy[:, :, :-1, 1, 2] = g[:, :, 1, 1:, 0]
        gy[:, :, :, 1, 1] = g[:, :, 1, :, 1]
        gy = gy.view(-1, 9 * c_out)
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        grad_h = (gy @ w.t()).view(batch, n, n, c_in).permute(0, 3, 1, 2).to(h_dtype)
        grad_w = (pixels.t() @ gy).view(c_in, 3, 3, c_out).permute(0, 3, 1, 2).to(w_dtype)
        return grad_h, grad_w, g.sum(dim=(0, 1, 2, 3, 4), dtype=b_dtype)


def phase_transposed_conv_relu(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """`relu(deconv(F.pad(h, PAD_BEFORE)))` of `Decoder`'s stride-2 layers, as GEMMs (same math, other rounding)."""
    return _PhaseTransposedConvReLU.apply(h.contiguous(memory_format=torch.channels_last), weight, bias)


def _valid_stride2(side: int) -> int:
    return (side - 3) // 2 + 1  # a 3x3 "valid" convolution with stride 2


class Encoder(nn.Module):
    """x (B, C, H, W) -> `out_features` features for q(z|x) (the tutorial's: C = 1, 28 x 28, 2 * latent_dim)."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.conv1 = nn.Conv2d(channels, 32, kernel_size=3, stride=2)  # 28 -> 13 (32 -> 15)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=2)  # 13 -> 6 (15 -> 7)
        self.dense = nn.Linear(64 * _valid_stride2(_valid_stride2(height)) * _valid_stride2(_valid_stride2(width)),
                               out_features)
        self.apply(_keras_init)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.dense(h.flatten(1))


class Decoder(nn.Module):
    """z (B, latent_dim) -> likelihood parameters (B, out_channels, H, W) of p(x|z); H and W multiples of 4."""

    # How the stride-2 layers run, not what they compute (set by callbacks.runtime's measured choice, never saved):
    # "onednn" (torch's transposed convolutions) or "gemm" (`phase_transposed_conv_relu`).
    stride2: str = "onednn"

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        _, height, width = image_shape
        if height % 4 or width % 4:
            raise ValueError(f"the conv decoder doubles its size twice, so images must be multiples of 4 in height "
                             f"and width, not {height}x{width}")
        self.start = (height // 4, width // 4)  # 7 x 7 for MNIST, 8 x 8 for CIFAR-10
        self.dense = nn.Linear(latent_dim, 32 * self.start[0] * self.start[1])
        # Keras "same" with stride 2 pads the forward conv only at the bottom/right (total padding 1), so its
        # transpose keeps the first 2n rows/columns of the full (2n + 1) output. torch pads symmetrically; one zero
        # row/column before the input shifts the full output by 2, and padding=2, output_padding=1 then keep exactly
        # rows/columns 0 .. 2n - 1: no crop (and no copy) of the 4x larger output.
        self.deconv1 = nn.ConvTranspose2d(32, 64, kernel_size=3, stride=2, padding=2, output_padding=1)  # 7 -> 14
        self.deconv2 = nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=2, output_padding=1)  # 14 -> 28
        self.deconv3 = nn.ConvTranspose2d(32, out_channels, kernel_size=3, stride=1, padding=1)  # 28 -> 28
        self.apply(_keras_init)

    def forward(self, z: Tensor) -> Tensor:
        h = torch.relu(self.dense(z)).view(-1, 32, *self.start)
        for deconv in (self.deconv1, self.deconv2):
            if self.stride2 == "gemm" and h.shape[-1] == h.shape[-2]:
                h = phase_transposed_conv_relu(h, deconv.weight, deconv.bias)
            else:
                h = torch.relu(deconv(F.pad(h, PAD_BEFORE)))
        if torch.is_grad_enabled() or self.deconv3.out_channels != 1:
            return self.deconv3(h)  # training: oneDNN's backward made whole steps faster than the GEMM's (README)
        return one_channel_transposed_conv(h, self.deconv3.weight, self.deconv3.bias)
