"""vae_lab: train, sweep, watch and evaluate variational autoencoders on images (import-light: no torch here)."""
from pathlib import Path

__version__ = "0.1.0"
CONFIG_DIR = Path(__file__).resolve().parent / "conf"  # shipped with the package; the repo's conf/ links here
