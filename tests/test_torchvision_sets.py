"""data=fashion_mnist and data=cifar10 on small files written here in torchvision's exact formats and layouts.

No machine here can download the real files. Fashion-MNIST's loader runs unchanged on the fake IDX files. CIFAR-10's
torchvision class checks every file against the official MD5 before unpickling it, which tiny fake batches cannot
match: those tests replace torchvision's `check_integrity` by a file-exists check (the `md5_not_checked` fixture), so
the rest of torchvision's loading code runs on the fake pickles; the MD5 refusal itself is tested without it.
"""

import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT, compose_config
from vae_lab.data.torchvision_sets import CIFAR10, CIFAR_FILES, IDX_FILES, FashionMNIST
from vae_lab.errors import ConfigError, VaeLabError, exit_on_user_error


def write_fashion_mnist(data_dir: Path, n_train: int = 60, n_test: int = 20, compress: bool = True) -> tuple:
    """The four IDX files under <data_dir>/FashionMNIST/raw, gzipped as zalandoresearch ships them."""
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train) % 10),
              "t10k": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), np.arange(n_test) % 10)}
    raw = data_dir / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, (images, labels) in arrays.items():
        files = {f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 0x803, len(images), 28, 28) + images.tobytes(),
                 f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 0x801, len(labels)) +
                 labels.astype(np.uint8).tobytes()}
        for name, payload in files.items():
            (raw / (name + ".gz" if compress else name)).write_bytes(gzip.compress(payload) if compress else payload)
    return arrays


def write_cifar10(folder: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """data_batch_1..5, test_batch and batches.meta as the official Python pickles: dicts whose `data` is a
    (n, 3072) uint8 array, each row the red, then green, then blue 32x32 plane, and `labels` a list of ints."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {}
    for index, name in enumerate(CIFAR_FILES[:-1]):
        data, labels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), [(index + i) % 10 for i in
                                                                                   range(per_batch)]
        entry = {"batch_label": f"batch {index}", "labels": labels, "data": data,
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = (data, labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                               "frog", "horse", "ship", "truck"], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


@pytest.fixture
def md5_not_checked(monkeypatch) -> None:
    import torchvision.datasets.cifar
    import torchvision.datasets.utils

    def exists(fpath: str, md5: str | None = None) -> bool:
        return os.path.isfile(fpath)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)
    monkeypatch.setattr(torchvision.datasets.utils, "check_integrity", exists)


def test_fashion_mnist_reads_gzipped_idx_files_with_torchvisions_class(tmp_path: Path) -> None:
    arrays = write_fashion_mnist(tmp_path)
    dm = FashionMNIST(data_dir=str(tmp_path), allow_download=False, eval_batch_size=8)
    assert dm.image_shape == (1, 28, 28) and dm.hparams.binarize == "none"
    dm.prepare_data()
    dm.setup("fit")
    train_x, train_y = dm.splits["train"]
    assert train_x.dtype == torch.float32 and train_x.shape == (60, 1, 28, 28)
    assert torch.equal(train_x[:, 0], torch.from_numpy(arrays["train"][0]).float() / 255)
    assert train_y.tolist() == arrays["train"][1].tolist() and dm.splits["test"][0].shape == (20, 1, 28, 28)
    assert len(torch.unique(train_x)) == 256
    raw = tmp_path / "FashionMNIST" / "raw"
    assert dm.provenance["files"] == [str(raw / name) for name in IDX_FILES]  # the unpacked files torchvision read
    assert dm.provenance["summary"].startswith(f"data: 80 grey 28x28 images from {raw}, 8-bit values kept")


def test_fashion_mnist_binarized_when_asked(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path, compress=False)
    dm = FashionMNIST(data_dir=str(tmp_path), allow_download=False, binarize="static")
    dm.setup("fit")
    assert set(torch.unique(dm.splits["train"][0]).tolist()) == {0.0, 1.0}


def test_missing_fashion_mnist_says_which_files_go_where_and_exits_2(tmp_path: Path, capsys) -> None:
    dm = FashionMNIST(data_dir=str(tmp_path), allow_download=False)
    with pytest.raises(SystemExit) as exited:
        exit_on_user_error(lambda _: dm.prepare_data(), None)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    raw = tmp_path / "FashionMNIST" / "raw"
    assert err.startswith(f"error: Fashion-MNIST is not in {raw} ") and err.count("\n") == 1
    assert all(name in err for name in IDX_FILES) and "data.allow_download=false" in err


def test_a_failed_download_is_named(tmp_path: Path, monkeypatch) -> None:
    from urllib.error import URLError

    def offline(self) -> None:
        raise URLError("no network")

    monkeypatch.setattr(FashionMNIST, "download", offline)
    with pytest.raises(ConfigError, match=r"torchvision's download failed \(URLError\)"):
        FashionMNIST(data_dir=str(tmp_path), allow_download=True).prepare_data()


def test_a_corrupt_gz_is_named(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path)
    broken = tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:12])
    with pytest.raises(VaeLabError, match=rf"^{broken} is not a readable .gz file"):
        FashionMNIST(data_dir=str(tmp_path), allow_download=False).setup("fit")
    assert not (broken.parent / "t10k-labels-idx1-ubyte").exists()


def test_cifar10_reads_the_batch_pickles_with_torchvisions_class(tmp_path: Path, md5_not_checked) -> None:
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    dm = CIFAR10(data_dir=str(tmp_path), allow_download=False)
    assert dm.image_shape == (3, 32, 32)
    dm.setup("fit")
    train_x, train_y = dm.splits["train"]
    assert train_x.shape == (20, 3, 32, 32) and dm.splits["test"][0].shape == (4, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    # Row i of a batch holds image i's red plane, then green, then blue: pixel (c, h, w) at c * 1024 + h * 32 + w.
    assert torch.equal(train_x[4:8], torch.from_numpy(data).view(4, 3, 32, 32).float() / 255)
    assert train_y[4:8].tolist() == labels and dm.splits["test"][1].tolist() == batches["test_batch"][1]
    assert dm.provenance["summary"].startswith("data: 24 RGB 32x32 images from ")
    assert dm.provenance["num_files"] == 7 and dm.provenance["image_shape"] == [3, 32, 32]


def test_cifar10_from_the_archive_placed_in_data_dir(tmp_path: Path, md5_not_checked) -> None:
    write_cifar10(tmp_path / "staging" / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "staging" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    dm = CIFAR10(data_dir=str(tmp_path), allow_download=False)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.splits["train"][0].shape == (20, 3, 32, 32)


def test_cifar10_files_that_are_not_the_official_ones_are_refused_naming_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")  # torchvision's MD5 check is left on
    with pytest.raises(VaeLabError) as caught:
        CIFAR10(data_dir=str(tmp_path), allow_download=False).setup("fit")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'cifar-10-batches-py' / 'data_batch_1'} is not the official CIFAR-10 file")
    assert "c99cafc152244af753f735de768cd75f" in message  # torchvision's own MD5 of data_batch_1


def test_missing_cifar10_names_the_archive_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        CIFAR10(data_dir=str(tmp_path), allow_download=False).prepare_data()
    message = str(caught.value)
    assert message.startswith(f"CIFAR-10 is not in {tmp_path / 'cifar-10-batches-py'} (missing data_batch_1, ")
    assert f"put cifar-10-python.tar.gz (from www.cs.toronto.edu/~kriz/cifar.html) in {tmp_path}" in message
    assert caught.value.exit_code == 2 and "\n" not in message


@pytest.mark.parametrize(("option", "shape"), [("fashion_mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_the_configs_build_them_with_8_bit_values_by_default(option: str, shape: tuple, tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = compose_config("train", [f"data={option}", f"paths.data_dir={tmp_path}"], tmp_path / "run")
    dm = instantiate(cfg.data)
    assert dm.image_shape == shape and dm.hparams.binarize == "none" and dm.data_dir == tmp_path


def test_a_run_records_the_data_provenance_in_its_manifest(make_train_cfg, tmp_path: Path) -> None:
    from vae_lab.train import train

    write_fashion_mnist(tmp_path / "fashion", n_train=200, n_test=50)
    cfg = make_train_cfg("data=fashion_mnist", f"data.data_dir={tmp_path / 'fashion'}", "data.binarize=static",
                         "data.batch_size=50", "data.allow_download=false")
    train(cfg)
    manifest = json.loads((Path(cfg.paths.output_dir) / "manifest.json").read_text())
    assert manifest["data"]["binarize"] == "static" and manifest["data"]["counts"]["train"] == 200
    assert manifest["data"]["files"][0] == str(tmp_path / "fashion" / "FashionMNIST" / "raw" / IDX_FILES[0])
    assert len(manifest["data"]["sha256"]) == 64


def test_missing_files_make_a_training_run_exit_2(make_train_cfg, tmp_path: Path, capsys) -> None:
    from vae_lab.train import train

    cfg = make_train_cfg("data=fashion_mnist", f"data.data_dir={tmp_path / 'empty'}", "data.binarize=static",
                         "data.allow_download=false")
    with pytest.raises(SystemExit) as exited:
        exit_on_user_error(train, cfg)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: Fashion-MNIST is not in {tmp_path / 'empty'}")


@pytest.mark.slow
def test_the_summary_line_reaches_the_console_and_train_log(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (120, 28, 28, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", images=images)
    result = subprocess.run(
        [sys.executable, "-m", "vae_lab.train", "data=images", f"data.path={tmp_path / 'rgb.npz'}", "data.test_size=20",
         "data.binarize=static", "data.channels=1", "data.batch_size=50", "accelerator=cpu", "trainer.max_epochs=1",
         "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("data: "))
    assert line.startswith(f"data: 120 grey 28x28 images from {tmp_path / 'rgb.npz'} (channels last, NHWC; RGB "
                           "converted to grey)")
    assert line in (tmp_path / "run" / "train.log").read_text()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["data"]["summary"] == line
