"""Binarized images as a LightningDataModule: the splits, the binarization protocol and the batches.

Subclasses say where the uint8 images come from (`load()`: train and test arrays, (N, C, H, W)); this base turns
them into the binary data a Bernoulli VAE trains on, the same way for every source:

- `binarize=static`: pixels / 255 > threshold (the TensorFlow tutorial's), for every split.
- `binarize=dynamic` (the literature's protocol): training draws a fresh Bernoulli image every batch; validation
  and test use one fixed stochastic binarization of their images, drawn from `binarize_seed`, *not* the run's
  seed, so runs with different seeds are scored on the same test set, comparable with each other and with papers.

Splits: by default the tutorial's — train on every training image and validate every epoch on the test images.
With `val_size > 0`, that many training images (chosen by the seed) are held out for validation and the test set
is kept for `trainer.test`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

import lightning as L
import torch
from torch import Tensor

from vae_lab.config_checks import Rule, between, positive
from vae_lab.data.batches import EpochPermutation, TensorBatches

Binarize = Literal["static", "dynamic"]
BatchSize = Annotated[int, positive(100)]
Threshold = Annotated[float, Rule(lambda v: 0 <= v < 1, "a number in [0, 1) like 0.5")]
ValSize = Annotated[int, Rule(lambda v: v >= 0, "0 (validate on the test set, as the tutorial does) or a number "
                                                "of training images to hold out")]
Seed = Annotated[int, between(0, 2**32 - 1, f"an integer from 0 to {2**32 - 1}")]
DataDevice = Annotated[str, Rule(lambda v: re.fullmatch(r"auto|cpu|meta|mps|cuda(:\d+)?", v) is not None,
                                 "auto (the GPU when training on one, else the CPU), cpu, cuda or cuda:N")]


def binarize_static(pixels: Tensor, threshold: float = 0.5) -> Tensor:
    """uint8 pixels -> {0., 1.}: pixels / 255 > threshold (the tutorial's static binarization)."""
    return (pixels.float() / 255.0 > threshold).float()


def tensor_md5(tensor: Tensor) -> str:
    """MD5 of a tensor's values (as uint8 when binary): names one exact test set in the run's manifest."""
    return hashlib.md5(tensor.to(torch.uint8).cpu().contiguous().numpy().tobytes()).hexdigest()


def resolve_data_device(setting: str, root_device: torch.device | None) -> torch.device:
    """Where the in-memory dataset lives: `auto` follows the trainer's root device when it is a GPU (~50 MB of
    MNIST fits easily), and stays on the CPU otherwise; any other value is an explicit torch device."""
    if setting == "auto":
        if root_device is not None and root_device.type == "cuda":
            return root_device
        return torch.device("cpu")
    return torch.device(setting)


class BinarizedImages(L.LightningDataModule):
    """Base class; subclasses implement `load()` and `image_shape`, and pass these arguments on."""

    def __init__(
        self,
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
        super().__init__()
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width), known without loading every image."""
        raise NotImplementedError

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """uint8 train images (N, C, H, W), int64 train labels (N,), and the same for the test set."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        train_images, train_labels, test_images, test_labels = self.load()
        if hp.val_size >= len(train_images):
            from vae_lab.errors import VaeLabError

            raise VaeLabError(f"data.val_size={hp.val_size} holds out every training image (there are "
                              f"{len(train_images)}); use a number below {len(train_images)}, or 0.")
        test = (self._binarize(test_images, seed_offset=1), test_labels)
        if hp.val_size > 0:
            order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(hp.seed))
            held_out, kept = order[: hp.val_size], order[hp.val_size :]
            self.splits["train"] = (self._train_pixels(train_images[kept]), train_labels[kept])
            self.splits["val"] = (self._binarize(train_images[held_out], seed_offset=2), train_labels[held_out])
            self.splits["test"] = test
        else:
            self.splits["train"] = (self._train_pixels(train_images), train_labels)
            self.splits["val"] = test
            self.splits["test"] = test

    def test_set_md5(self) -> str:
        """The MD5 of the binarized test images (after `setup`): equal for every run scored on the same test set."""
        return tensor_md5(self.splits["test"][0])

    def _train_pixels(self, images: Tensor) -> Tensor:
        # Dynamic binarization keeps probabilities and draws a fresh binary image every batch.
        if self.hparams.binarize == "dynamic":
            return images.float() / 255.0
        return binarize_static(images, self.hparams.threshold)

    def _binarize(self, images: Tensor, seed_offset: int) -> Tensor:
        # Evaluation data is binarized once (a fixed draw when dynamic) so every epoch, and every run, scores the
        # same images: the draw depends on binarize_seed only, never on the run's seed.
        if self.hparams.binarize == "dynamic":
            generator = torch.Generator().manual_seed(self.hparams.binarize_seed + seed_offset)
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
