"""Your own images: a folder of PNG files or an `.npz` of uint8 arrays, binarized like MNIST.

- A folder: every `*.png` below it (sorted by path), read as grayscale unless `channels=3`; the test set is
  `test_size` of them, picked once by `split_seed` (fixed, so every run tests on the same images).
- An `.npz`: arrays `train` and `test` (and optional `train_labels`, `test_labels`), or one array `images`
  split as a folder is; each (N, H, W) or (N, C, H, W) uint8.
All images must share one size; the model must take that size (`model=cvae` takes 1 x 28 x 28; `model=mlp_vae`
takes any, with `model.image_shape=[C,H,W]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from torch import Tensor

from vae_lab.config_checks import check_arguments, positive
from vae_lab.data.datamodule import BatchSize, Binarize, BinarizedImages, DataDevice, Seed, Threshold, ValSize
from vae_lab.errors import VaeLabError

FORMATS = "a folder of .png files or an .npz file of uint8 arrays"


def _as_nchw(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim not in (3, 4):
        raise VaeLabError(f"{where} holds a {array.dtype} array of shape {array.shape}; use uint8 images shaped "
                          "(N, H, W) or (N, C, H, W).")
    return array[:, None] if array.ndim == 3 else array


class ImageFiles(BinarizedImages):
    def __init__(
        self,
        path: str,
        channels: Literal[1, 3] = 1,
        test_size: Annotated[int, positive(1000)] = 1000,
        split_seed: Seed = 0,
        batch_size: BatchSize = 100,
        eval_batch_size: BatchSize = 1000,
        binarize: Binarize = "static",
        threshold: Threshold = 0.5,
        val_size: ValSize = 0,
        shuffle: bool = True,
        seed: Seed = 42,
        binarize_seed: Seed = 0,
        data_device: DataDevice = "auto",
    ) -> None:
        check_arguments(ImageFiles, locals(), "data")
        super().__init__(batch_size, eval_batch_size, binarize, threshold, val_size, shuffle, seed, binarize_seed,
                         data_device)
        self.save_hyperparameters()
        self.path = Path(path).expanduser()
        if not (self.path.is_dir() or (self.path.is_file() and self.path.suffix == ".npz")):
            raise VaeLabError(f"data.path={path} is not {FORMATS}; give one of those.")

    def _pngs(self) -> list[Path]:
        files = sorted(self.path.rglob("*.png"))
        if not files:
            raise VaeLabError(f"data.path={self.path} holds no .png files; use {FORMATS}.")
        return files

    def _read_png(self, file: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(file) as image:
            pixels = np.asarray(image.convert("L" if self.hparams.channels == 1 else "RGB"))
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.path.is_dir():
            return tuple(self._read_png(self._pngs()[0]).shape)
        with np.load(self.path) as arrays:
            key = "train" if "train" in arrays else "images"
            if key not in arrays:
                raise VaeLabError(f"data.path={self.path} has arrays {', '.join(arrays)}; name them train and test "
                                  "(or one array images).")
            return tuple(_as_nchw(arrays[key][:1], f"data.path={self.path}").shape[1:])

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.path.is_dir():
            files = self._pngs()
            images = [self._read_png(file) for file in files]
            shapes = {image.shape for image in images}
            if len(shapes) > 1:
                raise VaeLabError(f"data.path={self.path} holds images of {len(shapes)} sizes ({sorted(shapes)[:3]}); "
                                  "use images of one size.")
            return self._split(np.stack(images), None)
        with np.load(self.path) as arrays:
            where = f"data.path={self.path}"
            if "train" in arrays and "test" in arrays:
                train, test = _as_nchw(arrays["train"], where), _as_nchw(arrays["test"], where)
                labels = [torch.from_numpy(arrays[name].astype(np.int64)) if name in arrays else None
                          for name in ("train_labels", "test_labels")]
                return (torch.from_numpy(train), _labels(labels[0], len(train)),
                        torch.from_numpy(test), _labels(labels[1], len(test)))
            return self._split(_as_nchw(arrays[next(iter(arrays))], where), None)

    def _split(self, images: np.ndarray, labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        test_size = self.hparams.test_size
        if test_size >= len(images):
            raise VaeLabError(f"data.test_size={test_size} leaves no training images ({self.path} holds "
                              f"{len(images)}); use a number below {len(images)}.")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.hparams.split_seed))
        tensor, labels = torch.from_numpy(images), _labels(labels, len(images))
        test, train = order[:test_size], order[test_size:]
        return tensor[train], labels[train], tensor[test], labels[test]


def _labels(labels: Tensor | None, count: int) -> Tensor:
    return labels if labels is not None else torch.zeros(count, dtype=torch.int64)
