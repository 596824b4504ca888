"""MNIST, read from the real IDX files (`mnist_files.ensure_mnist_files` finds or rebuilds them); binarized
(`binarize=static`, the default, or `dynamic`) or kept as 8-bit grey levels (`binarize=none`)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from vae_lab.data.datamodule import Binarize, ImageData
from vae_lab.data.mnist_files import OFFICIAL_MD5, ensure_mnist_files


def load_split(raw_dir: Path, train: bool) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,), read with torchvision's own IDX reader."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    prefix = "train" if train else "t10k"
    images = read_image_file(str(raw_dir / f"{prefix}-images-idx3-ubyte")).unsqueeze(1)
    labels = read_label_file(str(raw_dir / f"{prefix}-labels-idx1-ubyte")).long()
    return images, labels


class BinarizedMNIST(ImageData):
    """The class keeps its name (saved run configs and checkpoints name it) though `binarize=none` keeps grey."""

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        binarize: Binarize = "static",
        threshold: float = 0.5,
        val_size: int = 0,
        shuffle: bool = True,
        seed: int = 42,
        binarize_seed: int = 0,
        allow_download: bool = True,
        data_device: str = "auto",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, binarize, threshold, val_size, shuffle, seed, binarize_seed,
                         data_device)
        self.save_hyperparameters()
        self.data_dir = Path(data_dir).expanduser()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    @property
    def source(self) -> str:
        return str(self.data_dir / "MNIST" / "raw")

    def source_files(self) -> list[Path]:
        return [self.data_dir / "MNIST" / "raw" / name for name in OFFICIAL_MD5]

    def prepare_data(self) -> None:
        ensure_mnist_files(self.data_dir, allow_download=self.hparams.allow_download)

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raw_dir = ensure_mnist_files(self.data_dir, allow_download=False)
        return (*load_split(raw_dir, train=True), *load_split(raw_dir, train=False))
