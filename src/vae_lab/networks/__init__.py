"""Encoders and decoders in pure torch (no Lightning): one file per architecture family."""

from vae_lab.networks.conv import Decoder, Encoder
from vae_lab.networks.made import MADE
from vae_lab.networks.mlp import MLPDecoder, MLPEncoder, mlp

__all__ = ["MADE", "Decoder", "Encoder", "MLPDecoder", "MLPEncoder", "mlp"]
