"""MNIST images from vae_lab's IDX files (<data_dir>/MNIST/raw) with numpy alone, binarized as the tutorial does.

Shared by tf_tutorial.py (in the TensorFlow venv, without torch or vae_lab) and the PyTorch rows, so that every
row of `make bench` trains on the same arrays. vae_lab's own path reads the same files with torchvision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_idx_images(path: Path) -> np.ndarray:
    """An IDX3 file (big-endian magic 2051, count, rows, cols, then uint8 pixels) as an (n, rows, cols) array."""
    data = Path(path).read_bytes()
    magic, count, rows, cols = (int(v) for v in np.frombuffer(data, dtype=">i4", count=4))
    if magic != 2051:
        raise SystemExit(f"error: {path} is not an IDX image file (magic {magic}, expected 2051).")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def binarized_images(data_dir: Path, train: bool) -> np.ndarray:
    """(n, 28, 28) float32 in {0, 1}: pixels / 255 > 0.5, the tutorial's `preprocess_images` without the reshape."""
    prefix = "train" if train else "t10k"
    pixels = read_idx_images(Path(data_dir) / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte")
    return np.where(pixels / 255. > .5, 1.0, 0.0).astype(np.float32)
