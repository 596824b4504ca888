"""Models: `VAE` (the contract and the LightningModule every model shares) and one file per family."""

from vae_lab.models.cvae import CVAE
from vae_lab.models.hvae import HVAE
from vae_lab.models.mlp_vae import MLPVAE
from vae_lab.models.vae import VAE

__all__ = ["CVAE", "HVAE", "MLPVAE", "VAE"]
