"""Your own images: a folder of PNG files or an `.npz` of uint8 arrays, grey or colour, kept as they are unless asked.

- A folder: every `*.png` below it (sorted by path). Grey files stay grey, colour files stay colour (`channels=auto`;
  a folder mixing both is read as RGB); `channels=1` or `3` converts on request (PIL's luma for grey). An alpha
  channel is dropped. The test set is `test_size` of them, picked once by `split_seed` (fixed, so every run tests on
  the same images).
- An `.npz`: arrays `train` and `test` (and optional `train_labels`, `test_labels`); or Keras' naming, `x_train`,
  `x_test` (and `y_train`, `y_test`), as `keras.datasets.mnist.load_data()` gives them; or one array (`images`, with
  optional `labels`) split as a folder is. Images are uint8, (N, H, W), (N, H, W, C) or (N, C, H, W) with C in
  {1, 3, 4}: the layout is the one whose channel axis has 1, 3 or 4 entries, and a shape where both could be is
  refused.
- Pixel values are kept (`binarize=none`, the default here) unless `binarize=static|dynamic` asks for binary images.
All images must share one size; the model must take that size.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from vae_lab.data.datamodule import Binarize, ImageData
from vae_lab.errors import ConfigError, VaeLabError, check_positive, check_seed, refuse

FORMATS = "a folder of .png files or an .npz file of uint8 arrays"
CHANNEL_SIZES = (1, 3, 4)
GREY_MODES = {"1": "L", "L": "L", "LA": "L"}
COLOUR_MODES = {"RGB": "RGB", "RGBA": "RGB", "P": "RGB", "PA": "RGB", "CMYK": "RGB", "YCbCr": "RGB"}
Arrays = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]


def to_nchw(array: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """uint8 images as (N, C, H, W), and a note when the layout was changed; one sentence when it cannot be told."""
    shape = tuple(array.shape)
    if array.dtype != np.uint8:
        raise VaeLabError(f"{where} holds {array.dtype} images of shape {shape}; use uint8 pixels from 0 to 255 "
                          "(for floats in [0, 1]: (x * 255).round().astype('uint8')).")
    if array.ndim == 3:
        if shape[2] in (3, 4):
            raise VaeLabError(f"{where} holds an array of shape {shape}, which reads as one {shape[0]}x{shape[1]} "
                              f"colour image or as {shape[0]} grey images {shape[2]} pixels wide; save several images "
                              "as (N, H, W), (N, H, W, C) or (N, C, H, W).")
        return array[:, None], None
    if array.ndim != 4:
        raise VaeLabError(f"{where} holds an array of shape {shape}; use images shaped (N, H, W), (N, H, W, C) or "
                          "(N, C, H, W) with C = 1, 3 or 4.")
    first, last = shape[1] in CHANNEL_SIZES, shape[3] in CHANNEL_SIZES
    if first and last:
        raise VaeLabError(f"{where} holds images of shape {shape}, where axis 1 or axis 3 could hold the channels; "
                          "save them as (N, H, W) if grey, or with height and width above 4.")
    if not (first or last):
        raise VaeLabError(f"{where} holds images of shape {shape} with no axis of 1, 3 or 4 channels; use (N, H, W), "
                          "(N, H, W, C) or (N, C, H, W) with C = 1, 3 or 4.")
    if last:
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2)), "channels last, NHWC"
    return array, None


def to_channels(images: np.ndarray, channels: int) -> tuple[np.ndarray, str | None]:
    """(N, C, H, W) uint8 with C in {1, 3, 4} -> `channels` channels (alpha dropped), and a note of what changed."""
    notes = []
    if images.shape[1] == 4:
        images, notes = images[:, :3], ["alpha channel dropped"]
    if images.shape[1] == channels:
        return images, "; ".join(notes) or None
    if channels == 3:
        return np.repeat(images, 3, axis=1), "; ".join([*notes, "grey repeated into RGB"])
    # PIL's ITU-R 601-2 luma, in its integer form, so arrays and PNGs give the same grey.
    r, g, b = (images[:, index].astype(np.uint32) for index in range(3))
    grey = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[:, None]
    return grey, "; ".join([*notes, "RGB converted to grey"])


def labels_or_zeros(labels: np.ndarray | None, count: int, where: str) -> Tensor:
    if labels is None:
        return torch.zeros(count, dtype=torch.int64)
    labels = np.asarray(labels).reshape(-1)  # Keras ships CIFAR's labels as (N, 1)
    if len(labels) != count or not np.issubdtype(labels.dtype, np.integer):
        raise VaeLabError(f"{where} has {len(labels)} {labels.dtype} labels for {count} images; use one integer "
                          "label per image, or none.")
    return torch.from_numpy(labels.astype(np.int64))


class ImageFiles(ImageData):
    def __init__(
        self,
        path: str,
        channels: Literal["auto", 1, 3] = "auto",
        test_size: int = 1000,
        split_seed: int = 0,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        binarize: Binarize = "none",
        threshold: float = 0.5,
        val_size: int = 0,
        shuffle: bool = True,
        seed: int = 42,
        binarize_seed: int = 0,
        data_device: str = "auto",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, binarize, threshold, val_size, shuffle, seed, binarize_seed,
                         data_device)
        if channels not in ("auto", 1, 3) or isinstance(channels, bool):
            raise refuse("data.channels", channels, "auto (what the files hold), 1 (grey) or 3 (RGB)")
        check_positive("data.test_size", test_size, 1000)
        check_seed("data.split_seed", split_seed)
        self.save_hyperparameters()
        self.path = Path(path).expanduser()
        if not (self.path.is_dir() or (self.path.is_file() and self.path.suffix == ".npz")):
            raise ConfigError(f"data.path={path} is not {FORMATS}; give one of those.")
        self._files: list[Path] = []
        self._arrays: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.splits:
            return tuple(self.splits["train"][0].shape[1:])
        return tuple(self._read()[0].shape[1:])

    @property
    def source(self) -> str:
        return str(self.path)

    def source_files(self) -> list[Path]:
        return self._files

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        arrays = self._read()
        self._arrays = None  # the splits hold the images from now on
        return arrays

    def _read(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Read the files once (image_shape, asked before setup, and load share it)."""
        if self._arrays is None:
            self.notes = []
            train, train_labels, test, test_labels = self._read_folder() if self.path.is_dir() else self._read_npz()
            where = f"data.path={self.path}"
            self._arrays = (torch.from_numpy(train), labels_or_zeros(train_labels, len(train), where),
                            torch.from_numpy(test), labels_or_zeros(test_labels, len(test), where))
        return self._arrays

    def _wanted_channels(self, found: set[int]) -> int:
        """data.channels, or with `auto` what the files hold: grey if every image is, else RGB."""
        return self.hparams.channels if self.hparams.channels != "auto" else (3 if max(found) > 1 else 1)

    def _convert(self, *images: np.ndarray) -> list[np.ndarray]:
        channels = self._wanted_channels({min(array.shape[1], 3) for array in images})
        converted = [to_channels(array, channels) for array in images]
        for note in dict.fromkeys(note for _, note in converted if note):
            self.notes.append(note)
        return [array for array, _ in converted]

    def _read_folder(self) -> Arrays:
        files = sorted(file for file in self.path.rglob("*") if file.suffix.lower() == ".png" and file.is_file())
        if not files:
            raise ConfigError(f"data.path={self.path} holds no .png files; use {FORMATS}.")
        images, alphas = zip(*(read_png(file) for file in files), strict=True)
        if any(alphas):
            self.notes.append("alpha channel dropped")
        shapes = sorted({image.shape[1:] for image in images})
        if len(shapes) > 1:
            raise VaeLabError(f"data.path={self.path} holds images of {len(shapes)} sizes ({shapes[:3]}, height x "
                              "width); use images of one size.")
        kinds = {image.shape[0] for image in images}
        converted = [to_channels(image[None], self._wanted_channels(kinds)) for image in images]
        for note in dict.fromkeys(note for _, note in converted if note):
            self.notes.append(f"{note} in some files" if len(kinds) > 1 else note)
        self._files = files
        return self._split(np.concatenate([image for image, _ in converted]), None)

    def _read_npz(self) -> Arrays:
        where = f"data.path={self.path}"
        if not zipfile.is_zipfile(self.path):  # numpy would blame "pickled data" for any other bytes
            raise VaeLabError(f"{where} is not a readable .npz file (not a zip archive); save it with numpy.savez.")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                names = list(npz.files)
                get = lambda name: npz[name] if name in names else None  # noqa: E731
                if "train" in names and "test" in names:
                    train, test, labels = npz["train"], npz["test"], (get("train_labels"), get("test_labels"))
                elif "x_train" in names and "x_test" in names:
                    train, test, labels = npz["x_train"], npz["x_test"], (get("y_train"), get("y_test"))
                    self.notes.append("Keras' x_train/x_test arrays")
                elif "images" in names or len(set(names) - {"labels"}) == 1:
                    name = "images" if "images" in names else next(n for n in names if n != "labels")
                    train, test, labels = npz[name], None, (get("labels"), None)
                else:
                    raise ConfigError(f"{where} has arrays {', '.join(names)}; name them train and test, x_train and "
                                      "x_test (Keras'), or give one array images.")
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise VaeLabError(f"{where} is not a readable .npz file ({first_line(error)}); save it with "
                              "numpy.savez.") from error
        self._files = [self.path]
        train, layout = to_nchw(train, where)
        if test is None:
            self.notes.extend([layout] if layout else [])
            return self._split(self._convert(train)[0], labels[0])
        test, _ = to_nchw(test, where)
        if train.shape[1:] != test.shape[1:]:
            raise VaeLabError(f"{where} holds train images {train.shape[1:]} and test images {test.shape[1:]} "
                              "(channels, height, width); use one shape for both.")
        self.notes.extend([layout] if layout else [])
        train, test = self._convert(train, test)
        return train, labels[0], test, labels[1]

    def _split(self, images: np.ndarray, labels: np.ndarray | None) -> Arrays:
        test_size = self.hparams.test_size
        if test_size >= len(images):
            raise refuse("data.test_size", test_size, f"a number below {len(images)} (the images in {self.path})")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.hparams.split_seed)).numpy()
        test, train = order[:test_size], order[test_size:]
        labels = None if labels is None else np.asarray(labels).reshape(-1)
        if labels is not None and len(labels) != len(images):
            raise VaeLabError(f"data.path={self.path} has {len(labels)} labels for {len(images)} images; use one "
                              "integer label per image, or none.")
        return (images[train], None if labels is None else labels[train],
                images[test], None if labels is None else labels[test])


def first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def read_png(file: Path) -> tuple[np.ndarray, bool]:
    """One PNG as uint8 (1, H, W) if its pixels are grey (a palette of greys included), (3, H, W) if colour, and
    whether an alpha channel was dropped; a damaged file named in one sentence."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            image.load()
            mode = GREY_MODES.get(image.mode) or COLOUR_MODES.get(image.mode)
            if mode is None:
                raise VaeLabError(f"{file} holds {image.mode} pixels (not 8-bit grey or colour); save it as an 8-bit "
                                  "grey or RGB PNG.")
            alpha = "A" in image.getbands()
            pixels = np.asarray(image.convert(mode))
            if image.mode in ("P", "PA") and (pixels == pixels[..., :1]).all():
                pixels = pixels[..., 0]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise VaeLabError(f"{file} is not a readable PNG image ({first_line(error)}); delete or replace it.") from error
    return (pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)), alpha
