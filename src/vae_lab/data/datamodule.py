"""Images as a LightningDataModule: the splits, what is done to the pixel values, the batches and the provenance.

Subclasses say where the uint8 images come from (`load()`: train and test arrays, (N, C, H, W)); this base turns
them into float32 images in [0, 1] the same way for every source, as `binarize` says:

- `binarize=none`: x = pixels / 255, the 8-bit grey or colour levels kept (for Gaussian or discretized-logistic
  likelihoods).
- `binarize=static`: x = pixels / 255 > threshold (the TensorFlow tutorial's), for every split.
- `binarize=dynamic` (the literature's protocol): training draws a fresh Bernoulli image every batch; validation
  and test use one fixed stochastic binarization of their images, drawn from `binarize_seed`, *not* the run's
  seed, so runs with different seeds are scored on the same test set, comparable with each other and with papers.

Splits: by default the tutorial's — train on every training image and validate every epoch on the test images.
With `val_size > 0`, that many training images (chosen by the seed) are held out for validation and the test set
is kept for `trainer.test`.

After `setup`, `provenance` records where the images came from (paths, a sha256 of the bytes read), their shape,
what was done to them and the split sizes; its `summary` line is logged once (logger `vae_lab.data`), so it reaches
the console and train.log, and the run manifest stores the whole record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from vae_lab.data.batches import EpochPermutation, TensorBatches
from vae_lab.errors import check_positive, check_seed, is_int, refuse

Binarize = Literal["static", "dynamic", "none"]
log = logging.getLogger("vae_lab.data")


def binarize_static(pixels: Tensor, threshold: float = 0.5) -> Tensor:
    """uint8 pixels -> {0., 1.}: pixels / 255 > threshold (the tutorial's static binarization)."""
    return (pixels.float() / 255.0 > threshold).float()


def tensor_md5(tensor: Tensor) -> str:
    """MD5 of a tensor's values (as uint8 when binary): names one exact test set in the run's manifest."""
    return hashlib.md5(tensor.to(torch.uint8).cpu().contiguous().numpy().tobytes()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(files: list[Path]) -> str:
    """One file: its sha256 (what `sha256sum FILE` prints). Several: the sha256 of `sha256sum`'s lines for them
    (`<sha256>  <path relative to their common folder>`, in this order), so a changed, added or renamed file shows."""
    if len(files) == 1:
        return file_sha256(files[0])
    root = Path(os.path.commonpath([str(file) for file in files]))
    lines = "".join(f"{file_sha256(file)}  {file.relative_to(root)}\n" for file in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def arrays_sha256(*tensors: Tensor) -> str:
    """For data made in memory (no files): the sha256 of the arrays' bytes, one after the other."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def resolve_data_device(setting: str, root_device: torch.device | None) -> torch.device:
    """Where the in-memory dataset lives: `auto` follows the trainer's root device when it is a GPU (~50 MB of
    MNIST fits easily), and stays on the CPU otherwise; any other value is an explicit torch device."""
    if setting == "auto":
        if root_device is not None and root_device.type == "cuda":
            return root_device
        return torch.device("cpu")
    return torch.device(setting)


def colour_name(channels: int) -> str:
    return {1: "grey", 3: "RGB"}.get(channels, f"{channels}-channel")


class ImageData(L.LightningDataModule):
    """Base class; subclasses implement `load()` and `image_shape`, pass these arguments on, and may name the files
    they read (`source_files()`) and describe them (`source`) for the provenance record."""

    def __init__(
        self,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        binarize: Binarize = "static",
        threshold: float = 0.5,
        val_size: int = 0,
        shuffle: bool = True,
        seed: int = 42,
        binarize_seed: int = 0,
        data_device: str = "auto",
    ) -> None:
        super().__init__()
        check_positive("data.batch_size", batch_size, 100)
        check_positive("data.eval_batch_size", eval_batch_size, 1000)
        if binarize not in ("static", "dynamic", "none"):
            raise refuse("data.binarize", binarize, "static (pixels/255 > threshold), dynamic (a Bernoulli draw) or "
                                                    "none (the 8-bit values, pixels/255)")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
            raise refuse("data.threshold", threshold, "a number in [0, 1) like 0.5")
        if not (is_int(val_size) and val_size >= 0):
            raise refuse("data.val_size", val_size, "0 (validate on the test set, as the tutorial does) or a number "
                                                    "of training images to hold out")
        check_seed("data.seed", seed)
        check_seed("data.binarize_seed", binarize_seed)
        if not (isinstance(data_device, str) and re.fullmatch(r"auto|cpu|meta|mps|cuda(:\d+)?", data_device)):
            raise refuse("data.data_device", data_device, "auto (the GPU when training on one, else the CPU), cpu, "
                                                          "cuda or cuda:N")
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.notes: list[str] = []  # what load() did to the files' pixels (e.g. "RGB converted to grey")
        self._provenance: dict[str, Any] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width), known before `setup` (train() checks it against the model first)."""
        raise NotImplementedError

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """uint8 train images (N, C, H, W), int64 train labels (N,), and the same for the test set."""
        raise NotImplementedError

    @property
    def source(self) -> str:
        """Where the images come from, for the summary line: a path, or a name for data made in memory."""
        return type(self).__name__

    def source_files(self) -> list[Path]:
        """The files `load()` read, hashed for the provenance; [] (data made in memory) hashes the arrays."""
        return []

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        train_images, train_labels, test_images, test_labels = self.load()
        if hp.val_size >= len(train_images):
            raise refuse("data.val_size", hp.val_size, f"a number below {len(train_images)} (the training images), "
                                                       "or 0")
        test = (self._eval_pixels(test_images, seed_offset=1), test_labels)
        if hp.val_size > 0:
            order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(hp.seed))
            held_out, kept = order[: hp.val_size], order[hp.val_size :]
            self.splits["train"] = (self._train_pixels(train_images[kept]), train_labels[kept])
            self.splits["val"] = (self._eval_pixels(train_images[held_out], seed_offset=2), train_labels[held_out])
            self.splits["test"] = test
        else:
            self.splits["train"] = (self._train_pixels(train_images), train_labels)
            self.splits["val"] = test
            self.splits["test"] = test
        files = self.source_files()
        sha256 = files_sha256(files) if files else arrays_sha256(train_images, train_labels, test_images, test_labels)
        self._provenance = self._describe(tuple(train_images.shape[1:]), len(train_images) + len(test_images),
                                          files, sha256)
        if self.trainer is None or self.trainer.is_global_zero:
            log.info(self._provenance["summary"])

    @property
    def provenance(self) -> dict[str, Any]:
        """What the run's images are and what was done to them (after `setup`): `source`, `files` (the paths read),
        `sha256`, `image_shape`, `binarize`, `threshold` (static only), `binarize_seed` (dynamic only), `values`
        ('binary' or '8-bit'), `converted` (load's own changes), `counts` per split and a one-line `summary`."""
        if self._provenance is None:
            raise RuntimeError("provenance is known after setup(); call datamodule.setup() first")
        return self._provenance

    def _describe(self, shape: tuple[int, ...], count: int, files: list[Path], sha256: str) -> dict[str, Any]:
        hp = self.hparams
        done = {
            "none": "8-bit values kept (binarize=none)",
            "static": f"thresholded at pixels/255 > {hp.threshold} (binarize=static)",
            "dynamic": f"a fresh Bernoulli draw per training batch, val/test drawn once from binarize_seed="
                       f"{hp.binarize_seed} (binarize=dynamic)",
        }[hp.binarize]
        counts = {split: len(self.splits[split][0]) for split in ("train", "val", "test")}
        val = "the test images" if self.splits["val"][0] is self.splits["test"][0] else "held out of train"
        converted = f" ({'; '.join(self.notes)})" if self.notes else ""
        summary = (f"data: {count} {colour_name(shape[0])} {shape[1]}x{shape[2]} images from {self.source}"
                   f"{converted}, {done}; train {counts['train']}, val {counts['val']} ({val}), test "
                   f"{counts['test']}; sha256 {sha256[:12]}…")
        return {
            "source": self.source,
            "files": [str(file) for file in files[:10]] + ([f"... {len(files) - 10} more"] if len(files) > 10 else []),
            "num_files": len(files),
            "sha256": sha256,
            "image_shape": list(shape),
            "binarize": hp.binarize,
            "threshold": hp.threshold if hp.binarize == "static" else None,
            "binarize_seed": hp.binarize_seed if hp.binarize == "dynamic" else None,
            "values": "8-bit" if hp.binarize == "none" else "binary",
            "converted": list(self.notes),
            "counts": counts,
            "val_is_test": val == "the test images",
            "summary": summary,
        }

    def test_set_md5(self) -> str:
        """The MD5 of the test images as scored (after `setup`): equal for every run scored on the same test set.
        Binary images as 0/1 bytes; 8-bit images as their pixel values (x * 255)."""
        images = self.splits["test"][0]
        return tensor_md5(images if self.hparams.binarize != "none" else (images * 255).round())

    def _train_pixels(self, images: Tensor) -> Tensor:
        # Dynamic binarization keeps probabilities and draws a fresh binary image every batch.
        if self.hparams.binarize in ("dynamic", "none"):
            return images.float() / 255.0
        return binarize_static(images, self.hparams.threshold)

    def _eval_pixels(self, images: Tensor, seed_offset: int) -> Tensor:
        # Evaluation data is binarized once (a fixed draw when dynamic) so every epoch, and every run, scores the
        # same images: the draw depends on binarize_seed only, never on the run's seed.
        if self.hparams.binarize == "dynamic":
            generator = torch.Generator().manual_seed(self.hparams.binarize_seed + seed_offset)
            return torch.bernoulli(images.float() / 255.0, generator=generator)
        if self.hparams.binarize == "none":
            return images.float() / 255.0
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


BinarizedImages = ImageData  # the name before binarize=none; tests/toy_project and README's "Add a dataset" use it
