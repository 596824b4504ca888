import pytest
import torch
from torch.nn import functional as F

from vae_lab.networks.conv import (
    PAD_BEFORE,
    Decoder,
    Encoder,
    one_channel_transposed_conv,
    phase_transposed_conv_relu,
)


def test_encoder_layer_shapes_follow_keras_valid_convs() -> None:
    encoder = Encoder(latent_dim=7)
    x = torch.zeros(5, 1, 28, 28)
    h1 = encoder.conv1(x)
    h2 = encoder.conv2(h1)
    assert h1.shape == (5, 32, 13, 13)
    assert h2.shape == (5, 64, 6, 6)
    mean, logvar = encoder(x)
    assert mean.shape == logvar.shape == (5, 7)


def test_decoder_layer_shapes_follow_keras_same_transposed_convs() -> None:
    decoder = Decoder(latent_dim=7)
    z = torch.zeros(5, 7)
    h0 = torch.relu(decoder.dense(z)).view(-1, 32, 7, 7)
    h1 = decoder.deconv1(F.pad(h0, PAD_BEFORE))
    h2 = decoder.deconv2(F.pad(h1, PAD_BEFORE))
    assert h1.shape == (5, 64, 14, 14)
    assert h2.shape == (5, 32, 28, 28)
    assert decoder(z).shape == (5, 1, 28, 28)


@pytest.mark.parametrize("layer", ["deconv1", "deconv2"])
def test_stride2_transposed_conv_is_the_adjoint_of_a_tf_same_conv(layer: str) -> None:
    # Keras' Conv2DTranspose(padding="same", strides=2) is the adjoint of Conv2D(padding="same", strides=2), and
    # TF pads that conv only at the bottom/right. The adjoint is the vector-Jacobian product of that conv.
    deconv = getattr(Decoder(latent_dim=3), layer)
    torch.nn.init.zeros_(deconv.bias)
    c_in, c_out = deconv.in_channels, deconv.out_channels
    size = {"deconv1": 7, "deconv2": 14}[layer]
    y = torch.randn(2, c_in, size, size)
    x = torch.zeros(2, c_out, 2 * size, 2 * size, requires_grad=True)
    forward = F.conv2d(F.pad(x, (0, 1, 0, 1)), deconv.weight, stride=2)
    assert forward.shape == y.shape
    (adjoint,) = torch.autograd.grad(forward, x, grad_outputs=y)
    ours = deconv(F.pad(y, PAD_BEFORE))  # as Decoder.forward runs it
    torch.testing.assert_close(ours, adjoint, rtol=1e-5, atol=1e-5)
    # ... which is the full transposed conv with its last row and column dropped (the straightforward port).
    full = F.conv_transpose2d(y, deconv.weight, deconv.bias, stride=2)
    assert full.shape[-1] == 2 * size + 1
    torch.testing.assert_close(ours, full[..., :-1, :-1], rtol=1e-5, atol=1e-5)


def test_initialization_is_keras_glorot_uniform_with_zero_bias() -> None:
    dense = Encoder(latent_dim=50).dense
    fan_in, fan_out = dense.in_features, dense.out_features
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    assert dense.weight.abs().max() <= limit
    assert dense.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(dense.bias) == 0


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_one_channel_transposed_conv_is_conv_transpose2d(memory_format: torch.memory_format) -> None:
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(3, 32, 28, 28, dtype=torch.float64, generator=generator).contiguous(memory_format=memory_format)
    weight = torch.randn(32, 1, 3, 3, dtype=torch.float64, generator=generator)
    bias = torch.randn(1, dtype=torch.float64, generator=generator)
    ours = one_channel_transposed_conv(h, weight, bias)
    torch.testing.assert_close(ours, F.conv_transpose2d(h, weight, bias, padding=1), rtol=0, atol=1e-12)


def test_decoder_without_gradients_gives_the_logits_of_the_training_path() -> None:
    decoder = Decoder(latent_dim=7)
    torch.nn.init.normal_(decoder.deconv3.bias)
    z = torch.randn(5, 7)
    training = decoder(z)  # deconv3 through oneDNN
    with torch.inference_mode():
        scoring = decoder(z)  # deconv3 as one GEMM
    assert training.requires_grad and not scoring.requires_grad
    torch.testing.assert_close(scoring, training.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", ["deconv1", "deconv2"])
def test_phase_gemm_stride2_layers_keep_keras_same_alignment(layer: str) -> None:
    # Decoder.stride2 = "gemm" (a kernel choice of callbacks.runtime): the same Keras-"same" layer, forward and
    # backward, as the oneDNN path that the TF-adjoint test above pins down; float64, so only rounding differs.
    deconv = getattr(Decoder(latent_dim=3), layer).double()
    torch.nn.init.normal_(deconv.bias)
    size = {"deconv1": 7, "deconv2": 14}[layer]
    h = torch.randn(2, deconv.in_channels, size, size, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    expected = torch.relu(deconv(F.pad(h, PAD_BEFORE)))
    ours = phase_transposed_conv_relu(h, deconv.weight, deconv.bias)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    grad = torch.randn_like(expected)
    inputs = [h, deconv.weight, deconv.bias]
    for a, b in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(expected, inputs, grad), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
