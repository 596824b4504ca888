"""Lightning callbacks, one per file, each configured by conf/callbacks/<name>.yaml.

The image callbacks rely only on the LightningModule's documented interface: `sample(z)`, `reconstruct(x)`,
`encode(x)` and `hparams.latent_dim`.
"""

from vae_lab.callbacks.gif import TrainingGif
from vae_lab.callbacks.hparams import HparamsSummary
from vae_lab.callbacks.latent_manifold import LatentManifold
from vae_lab.callbacks.nan_guard import NanGuard
from vae_lab.callbacks.reconstructions import Reconstructions
from vae_lab.callbacks.sample_grid import SampleGrid

__all__ = ["HparamsSummary", "LatentManifold", "NanGuard", "Reconstructions", "SampleGrid", "TrainingGif"]
