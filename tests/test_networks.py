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
from vae_lab.networks.made import MADE
from vae_lab.networks.mlp import MLPDecoder, MLPEncoder

MNIST = (1, 28, 28)


@pytest.mark.parametrize(("image_shape", "sides"), [(MNIST, (13, 6)), ((3, 32, 32), (15, 7))])
def test_encoder_layer_shapes_follow_keras_valid_convs(image_shape: tuple[int, int, int],
                                                       sides: tuple[int, int]) -> None:
    encoder = Encoder(image_shape, out_features=14)  # the Gaussian posterior's mean and log-variance of 7 latents
    x = torch.zeros(5, *image_shape)
    h1 = encoder.conv1(x)
    h2 = encoder.conv2(h1)
    assert h1.shape == (5, 32, sides[0], sides[0])
    assert h2.shape == (5, 64, sides[1], sides[1])
    assert encoder(x).shape == (5, 14)


@pytest.mark.parametrize(("image_shape", "out_channels", "sides"),
                         [(MNIST, 1, (7, 14, 28)), ((3, 32, 32), 6, (8, 16, 32))])
def test_decoder_layer_shapes_follow_keras_same_transposed_convs(image_shape: tuple[int, int, int], out_channels: int,
                                                                 sides: tuple[int, int, int]) -> None:
    decoder = Decoder(7, image_shape, out_channels)  # 6 = 2 parameters (a Gaussian's) x 3 channels
    z = torch.zeros(5, 7)
    h0 = torch.relu(decoder.dense(z)).view(-1, 32, sides[0], sides[0])
    h1 = decoder.deconv1(F.pad(h0, PAD_BEFORE))
    h2 = decoder.deconv2(F.pad(h1, PAD_BEFORE))
    assert h1.shape == (5, 64, sides[1], sides[1])
    assert h2.shape == (5, 32, sides[2], sides[2])
    assert decoder(z).shape == (5, out_channels, sides[2], sides[2])


def test_decoder_refuses_sizes_that_are_not_multiples_of_4() -> None:
    with pytest.raises(ValueError, match="30x30"):
        Decoder(7, (1, 30, 30), 1)


@pytest.mark.parametrize("layer", ["deconv1", "deconv2"])
def test_stride2_transposed_conv_is_the_adjoint_of_a_tf_same_conv(layer: str) -> None:
    # Keras' Conv2DTranspose(padding="same", strides=2) is the adjoint of Conv2D(padding="same", strides=2), and
    # TF pads that conv only at the bottom/right. The adjoint is the vector-Jacobian product of that conv.
    deconv = getattr(Decoder(3, MNIST, 1), layer)
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
    dense = Encoder(MNIST, 100).dense
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
    decoder = Decoder(7, MNIST, 1)
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
    deconv = getattr(Decoder(3, MNIST, 1), layer).double()
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


def test_mlp_encoder_and_decoder_have_two_tanh_layers_of_any_width() -> None:
    encoder, decoder = MLPEncoder((3, 8, 8), 10, hidden=16), MLPDecoder((3, 8, 8), 5, hidden=16, out_channels=9)
    sizes = [(m.in_features, m.out_features) for m in (*encoder.net, *decoder.net) if isinstance(m, torch.nn.Linear)]
    assert sizes == [(192, 16), (16, 16), (16, 10), (5, 16), (16, 16), (16, 576)]
    assert encoder(torch.zeros(2, 3, 8, 8)).shape == (2, 10)
    assert decoder(torch.zeros(2, 5)).shape == (2, 9, 8, 8)  # 3 parameters per channel, say
    assert sum(isinstance(m, torch.nn.Tanh) for m in encoder.net) == 2


@pytest.mark.parametrize("reverse", [False, True])
def test_made_outputs_depend_only_on_earlier_latents_and_the_context(reverse: bool) -> None:
    torch.manual_seed(0)
    made = MADE(4, hidden=10, context=2, reverse=reverse)
    z, h = torch.randn(4, requires_grad=True), torch.randn(2, requires_grad=True)
    order = [3, 2, 1, 0] if reverse else [0, 1, 2, 3]
    for output in (0, 1):  # m, then s
        for position, i in enumerate(order):
            grad_z, grad_h = torch.autograd.grad(made(z, h)[output][i], (z, h))
            earlier = order[:position]
            assert all((grad_z[j] != 0) == (j in earlier) for j in range(4)), (output, i, grad_z)
            assert grad_h.abs().sum() > 0  # every output sees the context, the first one included
