"""vae_lab: train, sweep, watch and evaluate variational autoencoders on images.

Kept import-light on purpose: `python -m vae_lab.train --help` must not pay for torch or Lightning.
"""

__version__ = "0.1.0"
