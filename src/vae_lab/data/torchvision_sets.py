"""Fashion-MNIST and CIFAR-10 through torchvision's own dataset classes, from the files in torchvision's layout.

- `data=fashion_mnist`: `<data_dir>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`, uncompressed or
  as the `.gz` files zalandoresearch/fashion-mnist ships (unpacked here); read by `torchvision.datasets.FashionMNIST`.
  1 x 28 x 28 grey.
- `data=cifar10`: `<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`, or
  `<data_dir>/cifar-10-python.tar.gz` (unpacked here); read by `torchvision.datasets.CIFAR10`, which first checks
  every file against the official MD5 (so the pickles it loads are the official ones). 3 x 32 x 32 colour.
With neither and `allow_download=true`, torchvision downloads them; failing that, one sentence says what goes where.
Both keep the 8-bit values by default (`binarize=none`).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import torch
from torch import Tensor

from vae_lab.atomic_files import atomic_write
from vae_lab.data.datamodule import Binarize, ImageData
from vae_lab.errors import ConfigError, VaeLabError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


class TorchvisionImages(ImageData):
    """A torchvision dataset under `data_dir`: subclasses name its files (`expected`), unpack what the user placed
    (`unpack`), say what goes where (`where_files_go`) and read it with torchvision's class (`read`)."""

    shape: tuple[int, int, int]
    title: str

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        binarize: Binarize = "none",
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
        return self.shape

    @property
    def folder(self) -> Path:
        raise NotImplementedError

    @property
    def source(self) -> str:
        return str(self.folder)

    def source_files(self) -> list[Path]:
        return self.expected()

    def expected(self) -> list[Path]:
        raise NotImplementedError

    def unpack(self) -> None:
        """Unpack archives the user placed (no internet needed)."""

    def where_files_go(self) -> str:
        raise NotImplementedError

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def download(self) -> None:
        raise NotImplementedError

    def prepare_data(self) -> None:
        self.ensure_files(self.hparams.allow_download)

    def ensure_files(self, allow_download: bool) -> None:
        """The expected files are there afterwards, or a `ConfigError` says which are missing and where they go."""
        if all(path.is_file() for path in self.expected()):
            return
        self.unpack()
        if all(path.is_file() for path in self.expected()):
            return
        tried = "downloading is off (data.allow_download=false)"
        if allow_download:
            try:
                self.download()
            except Exception as error:  # torchvision raises URLError/RuntimeError/OSError depending on the network
                tried = f"torchvision's download failed ({type(error).__name__})"
            else:
                return
        missing = [path.name for path in self.expected() if not path.is_file()]
        raise ConfigError(f"{self.title} is not in {self.folder} (missing {', '.join(missing)}); {tried}; "
                          f"{self.where_files_go()}.")

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        self.ensure_files(allow_download=False)
        train_images, train_labels = self.read(train=True)
        test_images, test_labels = self.read(train=False)
        if tuple(train_images.shape[1:]) != self.shape or tuple(test_images.shape[1:]) != self.shape:
            raise VaeLabError(f"the {self.title} files in {self.folder} hold {tuple(train_images.shape[1:])} images, "
                              f"not {self.shape} (channels, height, width); replace them with the original files.")
        return train_images, train_labels, test_images, test_labels


class FashionMNIST(TorchvisionImages):
    shape = (1, 28, 28)
    title = "Fashion-MNIST"

    @property
    def folder(self) -> Path:
        return self.data_dir / "FashionMNIST" / "raw"  # torchvision's raw_folder: <root>/<class name>/raw

    def expected(self) -> list[Path]:
        return [self.folder / name for name in IDX_FILES]

    def where_files_go(self) -> str:
        return (f"put {', '.join(IDX_FILES)} (or the same names with .gz, as github.com/zalandoresearch/fashion-mnist "
                f"ships them) in {self.folder}, or allow the download (data.allow_download=true) on a machine online")

    def unpack(self) -> None:
        for path in self.expected():
            archive = path.with_name(path.name + ".gz")
            if path.is_file() or not archive.is_file():
                continue
            try:
                payload = gzip.decompress(archive.read_bytes())
            except (OSError, EOFError, zlib.error) as error:
                raise VaeLabError(f"{archive} is not a readable .gz file ({error}); replace it with the original "
                                  "from github.com/zalandoresearch/fashion-mnist.") from error
            atomic_write(path, lambda stream, payload=payload: stream.write(payload))

    def download(self) -> None:
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

        TorchvisionFashionMNIST(str(self.data_dir), train=True, download=True)

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

        try:
            dataset = TorchvisionFashionMNIST(str(self.data_dir), train=train, download=False)
        except (AssertionError, RuntimeError, ValueError, TypeError, OSError) as error:
            raise VaeLabError(f"the Fashion-MNIST files in {self.folder} are not IDX files torchvision can read "
                              f"({type(error).__name__}: {error}); replace them with the original files.") from error
        return dataset.data.unsqueeze(1).contiguous(), dataset.targets.long()


class CIFAR10(TorchvisionImages):
    shape = (3, 32, 32)
    title = "CIFAR-10"

    @property
    def folder(self) -> Path:
        return self.data_dir / "cifar-10-batches-py"  # torchvision's CIFAR10.base_folder under <root>

    def expected(self) -> list[Path]:
        return [self.folder / name for name in CIFAR_FILES]

    def where_files_go(self) -> str:
        return (f"put {CIFAR_ARCHIVE} (from www.cs.toronto.edu/~kriz/cifar.html) in {self.data_dir}, or its "
                f"cifar-10-batches-py folder ({', '.join(CIFAR_FILES)}) there, or allow the download "
                "(data.allow_download=true) on a machine online")

    def unpack(self) -> None:
        archive = self.data_dir / CIFAR_ARCHIVE
        if not archive.is_file():
            return
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10
        from torchvision.datasets.utils import check_integrity, extract_archive

        if not check_integrity(str(archive), TorchvisionCIFAR10.tgz_md5):
            raise VaeLabError(f"{archive} is not the official CIFAR-10 archive (its MD5 differs from "
                              f"{TorchvisionCIFAR10.tgz_md5}); replace it with the one from "
                              "www.cs.toronto.edu/~kriz/cifar.html.")
        extract_archive(str(archive), str(self.data_dir))

    def download(self) -> None:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        TorchvisionCIFAR10(str(self.data_dir), train=True, download=True)

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10
        from torchvision.datasets.utils import calculate_md5, check_integrity

        try:
            dataset = TorchvisionCIFAR10(str(self.data_dir), train=train, download=False)
        except RuntimeError as error:  # torchvision: "Dataset not found or corrupted" (an MD5 differs)
            official = [*TorchvisionCIFAR10.train_list, *TorchvisionCIFAR10.test_list,
                        [TorchvisionCIFAR10.meta["filename"], TorchvisionCIFAR10.meta["md5"]]]
            path, md5 = next(((self.folder / name, md5) for name, md5 in official
                              if not check_integrity(os.fspath(self.folder / name), md5)), (self.folder, "?"))
            found = calculate_md5(os.fspath(path)) if path.is_file() else "missing"
            raise VaeLabError(f"{path} is not the official CIFAR-10 file (MD5 {found}, torchvision expects {md5}); "
                              f"replace it with the one in {CIFAR_ARCHIVE}.") from error
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # torchvision keeps (N, H, W, C)
        return images, torch.tensor(dataset.targets, dtype=torch.int64)
