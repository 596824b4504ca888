"""Binarized MNIST, read from the real IDX files (`mnist_files.ensure_mnist_files` finds or rebuilds them)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from vae_lab.config_checks import check_arguments
from vae_lab.data.datamodule import BatchSize, Binarize, BinarizedImages, DataDevice, Seed, Threshold, ValSize
from vae_lab.data.mnist_files import ensure_mnist_files


def load_split(raw_dir: Path, train: bool) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,), read with torchvision's own IDX reader."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    prefix = "train" if train else "t10k"
    images = read_image_file(str(raw_dir / f"{prefix}-images-idx3-ubyte")).unsqueeze(1)
    labels = read_label_file(str(raw_dir / f"{prefix}-labels-idx1-ubyte")).long()
    return images, labels


class BinarizedMNIST(BinarizedImages):
    def __init__(
        self,
        data_dir: str = "data",
        batch_size: BatchSize = 100,
        eval_batch_size: BatchSize = 1000,
        binarize: Binarize = "static",
        threshold: Threshold = 0.5,
        val_size: ValSize = 0,
        shuffle: bool = True,
        seed: Seed = 42,
        binarize_seed: Seed = 0,
        allow_download: bool = True,
        data_device: DataDevice = "auto",
    ) -> None:
        check_arguments(BinarizedMNIST, locals(), "data")
        super().__init__(batch_size, eval_batch_size, binarize, threshold, val_size, shuffle, seed, binarize_seed,
                         data_device)
        self.save_hyperparameters()
        self.data_dir = Path(data_dir).expanduser()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    def prepare_data(self) -> None:
        ensure_mnist_files(self.data_dir, allow_download=self.hparams.allow_download)

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raw_dir = ensure_mnist_files(self.data_dir, allow_download=False)
        return (*load_split(raw_dir, train=True), *load_split(raw_dir, train=False))
