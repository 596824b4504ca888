"""vae_lab: train, sweep, watch and evaluate variational autoencoders on images.

Kept import-light on purpose: `python -m vae_lab.train --help` must not pay for torch or Lightning.
"""

from pathlib import Path

__version__ = "0.1.0"
CONFIG_DIR = Path(__file__).resolve().parent / "conf"  # shipped with the package; the repo's conf/ links here
