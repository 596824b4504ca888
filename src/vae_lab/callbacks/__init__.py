"""Lightning callbacks, one per file, each configured by conf/callbacks/<name>.yaml.

The image callbacks rely only on the model contract (models/vae.py): `prior.sample(n)`, `decode_mean(z)`,
`reconstruct(x)`, `posterior_mean(x)`, `encode(x)` (a distribution), `prior.distribution()` and `latent_dim`.
"""

from vae_lab.callbacks.gif import TrainingGif
from vae_lab.callbacks.hparams import HparamsSummary
from vae_lab.callbacks.latent_manifold import LatentManifold
from vae_lab.callbacks.nan_guard import NanGuard
from vae_lab.callbacks.reconstructions import Reconstructions
from vae_lab.callbacks.sample_grid import SampleGrid

__all__ = ["HparamsSummary", "LatentManifold", "NanGuard", "Reconstructions", "SampleGrid", "TrainingGif"]
