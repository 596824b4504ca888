"""Binarized MNIST as a LightningDataModule.

Splits: by default the tutorial's — train on all 60,000 training images and validate every epoch on the
10,000 test images (the tutorial's "Test set ELBO"). With `val_size > 0`, that many training images are held
out (chosen by the seed) for validation and the test set is kept for `trainer.test`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from vae_lab.batches import EpochPermutation, TensorBatches
from vae_lab.mnist_files import ensure_mnist_files
from vae_lab.validation import TRAIN_SIZE, check_values


def binarize_static(pixels: Tensor, threshold: float = 0.5) -> Tensor:
    """uint8 pixels -> {0., 1.}: pixels / 255 > threshold (the tutorial's static binarization)."""
    return (pixels.float() / 255.0 > threshold).float()


def load_split(raw_dir: Path, train: bool) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,), read with torchvision's own IDX reader."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    prefix = "train" if train else "t10k"
    images = read_image_file(str(raw_dir / f"{prefix}-images-idx3-ubyte")).unsqueeze(1)
    labels = read_label_file(str(raw_dir / f"{prefix}-labels-idx1-ubyte")).long()
    return images, labels


def resolve_data_device(setting: str, root_device: torch.device | None) -> torch.device:
    """Where the in-memory dataset lives: `auto` follows the trainer's root device when it is a GPU (~50 MB of
    MNIST fits easily), and stays on the CPU otherwise; any other value is an explicit torch device."""
    if setting == "auto":
        if root_device is not None and root_device.type == "cuda":
            return root_device
        return torch.device("cpu")
    return torch.device(setting)


class BinarizedMNIST(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        binarize: str = "static",
        threshold: float = 0.5,
        val_size: int = 0,
        shuffle: bool = True,
        seed: int = 42,
        allow_download: bool = True,
        data_device: str = "auto",
    ) -> None:
        super().__init__()
        check_values(
            "data", batch_size=batch_size, eval_batch_size=eval_batch_size, binarize=binarize, threshold=threshold,
            val_size=val_size, shuffle=shuffle, allow_download=allow_download,
        )
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}

    def prepare_data(self) -> None:
        ensure_mnist_files(self.data_dir, allow_download=self.hparams.allow_download)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw_dir = ensure_mnist_files(self.data_dir, allow_download=False)
        train_images, train_labels = load_split(raw_dir, train=True)
        test_images, test_labels = load_split(raw_dir, train=False)
        test = (self._binarize(test_images, seed_offset=1), test_labels)
        if self.hparams.val_size > 0:
            order = torch.randperm(TRAIN_SIZE, generator=torch.Generator().manual_seed(self.hparams.seed))
            held_out, kept = order[: self.hparams.val_size], order[self.hparams.val_size :]
            self.splits["train"] = (self._train_pixels(train_images[kept]), train_labels[kept])
            self.splits["val"] = (self._binarize(train_images[held_out], seed_offset=2), train_labels[held_out])
            self.splits["test"] = test
        else:
            self.splits["train"] = (self._train_pixels(train_images), train_labels)
            self.splits["val"] = test
            self.splits["test"] = test

    def _train_pixels(self, images: Tensor) -> Tensor:
        # Dynamic binarization keeps probabilities and draws a fresh binary image every batch.
        if self.hparams.binarize == "dynamic":
            return images.float() / 255.0
        return binarize_static(images, self.hparams.threshold)

    def _binarize(self, images: Tensor, seed_offset: int) -> Tensor:
        # Evaluation data is binarized once (a fixed draw when dynamic) so every epoch scores the same images.
        if self.hparams.binarize == "dynamic":
            generator = torch.Generator().manual_seed(self.hparams.seed + seed_offset)
            return torch.bernoulli(images.float() / 255.0, generator=generator)
        return binarize_static(images, self.hparams.threshold)

    def place(self, device: torch.device) -> None:
        """Move every split to `device` once (val and test are often the same tensors: moved once, still shared)."""
        moved: dict[int, Tensor] = {}
        for name, tensors in self.splits.items():
            for tensor in tensors:
                if id(tensor) not in moved:
                    moved[id(tensor)] = tensor.to(device)
            self.splits[name] = tuple(moved[id(tensor)] for tensor in tensors)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> TensorBatches:
        rank, world_size, root_device = 0, 1, None
        if self.trainer is not None:
            rank, world_size = self.trainer.global_rank, self.trainer.world_size
            root_device = self.trainer.strategy.root_device
        device = resolve_data_device(self.hparams.data_device, root_device)
        if self.splits[split][0].device != device:
            self.place(device)  # batches are then sliced where the model is: no host-to-device copy per step
        images, labels = self.splits[split]
        sampler = EpochPermutation(len(images), shuffle, self.hparams.seed, rank, world_size)
        resample = split == "train" and self.hparams.binarize == "dynamic"
        return TensorBatches(images, labels, batch_size, sampler, resample=resample)

    def train_dataloader(self) -> TensorBatches:
        return self._loader("train", self.hparams.batch_size, shuffle=self.hparams.shuffle)

    def val_dataloader(self) -> TensorBatches:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> TensorBatches:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)
