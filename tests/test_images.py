"""data=images: a user's PNG folders and .npz files, grey or colour, in any usual layout, read as they are."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vae_lab.data.images import ImageFiles, to_channels
from vae_lab.errors import ConfigError, VaeLabError, exit_on_user_error


def pixels(count: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def png_folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return folder


def all_images(dm: ImageFiles) -> torch.Tensor:
    dm.setup("fit")
    return torch.cat([dm.splits["train"][0], dm.splits["test"][0]])


def test_a_colour_png_folder_keeps_colour_and_its_8_bit_values(tmp_path: Path) -> None:
    rgb = pixels(12, (8, 6, 3))
    dm = ImageFiles(path=str(png_folder(tmp_path / "rgb", rgb)), test_size=4, batch_size=4)
    assert dm.image_shape == (3, 8, 6) and dm.hparams.binarize == "none"
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 6)
    got = sorted(tuple((image * 255).round().to(torch.uint8).flatten().tolist()) for image in all_images(dm))
    assert got == sorted(tuple(torch.from_numpy(image).permute(2, 0, 1).flatten().tolist()) for image in rgb)
    assert dm.provenance["summary"].startswith("data: 12 RGB 8x6 images from ")
    assert dm.provenance["values"] == "8-bit" and dm.provenance["num_files"] == 12


def test_grey_stays_grey_and_binarizes_only_when_asked(tmp_path: Path) -> None:
    grey = np.tile(np.arange(256, dtype=np.uint8).reshape(16, 16), (5, 1, 1))
    folder = png_folder(tmp_path / "grey", grey)
    kept = all_images(ImageFiles(path=str(folder), test_size=1))
    assert kept.shape == (5, 1, 16, 16) and len(torch.unique(kept)) == 256
    binary = all_images(ImageFiles(path=str(folder), test_size=1, binarize="static"))
    assert set(torch.unique(binary).tolist()) == {0.0, 1.0}
    assert torch.equal(binary, (kept > 0.5).float())
    Image.fromarray(grey[0]).convert("P").save(folder / "palette_of_greys.png")
    assert ImageFiles(path=str(folder), test_size=1).image_shape == (1, 16, 16)
    (folder / "palette_of_greys.png").unlink()
    as_rgb = all_images(ImageFiles(path=str(folder), test_size=1, channels=3))
    assert as_rgb.shape == (5, 3, 16, 16) and torch.equal(as_rgb, kept.expand(-1, 3, -1, -1))


def test_channels_1_turns_colour_grey_as_pil_does_for_pngs_and_arrays(tmp_path: Path) -> None:
    rgb = pixels(6, (5, 7, 3))
    folder = png_folder(tmp_path / "rgb", rgb)
    pil_grey = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in rgb])
    from_arrays, note = to_channels(rgb.transpose(0, 3, 1, 2), 1)
    assert note == "RGB converted to grey" and np.array_equal(from_arrays[:, 0], pil_grey)
    dm = ImageFiles(path=str(folder), test_size=2, channels=1)
    got = (all_images(dm) * 255).round().to(torch.uint8)
    assert got.shape == (6, 1, 5, 7)
    assert sorted(map(bytes, got.numpy())) == sorted(map(bytes, pil_grey[:, None]))
    assert "RGB converted to grey" in dm.provenance["summary"] and dm.provenance["converted"]


def test_a_folder_mixing_grey_and_colour_is_read_as_rgb(tmp_path: Path) -> None:
    folder = png_folder(tmp_path / "mixed", pixels(3, (4, 4, 3)))
    Image.fromarray(pixels(1, (4, 4))[0]).save(folder / "grey.png")
    Image.fromarray(pixels(1, (4, 4, 4))[0], mode="RGBA").save(folder / "alpha.png")
    dm = ImageFiles(path=str(folder), test_size=1)
    assert dm.image_shape == (3, 4, 4)
    dm.setup("fit")
    assert dm.provenance["converted"] == ["alpha channel dropped", "grey repeated into RGB in some files"]


def test_nhwc_and_nchw_npz_files_load_to_the_same_images(tmp_path: Path) -> None:
    train, test = pixels(20, (32, 32, 3)), pixels(5, (32, 32, 3), seed=1)
    np.savez(tmp_path / "nhwc.npz", train=train, test=test)
    np.savez(tmp_path / "nchw.npz", train=train.transpose(0, 3, 1, 2), test=test.transpose(0, 3, 1, 2))
    modules = [ImageFiles(path=str(tmp_path / name)) for name in ("nhwc.npz", "nchw.npz")]
    assert [dm.image_shape for dm in modules] == [(3, 32, 32), (3, 32, 32)]
    for dm in modules:
        dm.setup("fit")
    for split in ("train", "test"):
        assert torch.equal(modules[0].splits[split][0], modules[1].splits[split][0])
    assert torch.equal(modules[0].splits["test"][0][0], torch.from_numpy(test[0]).permute(2, 0, 1).float() / 255)
    assert modules[0].provenance["converted"] == ["channels last, NHWC"]


def test_an_npz_in_keras_naming_is_read_with_its_labels(tmp_path: Path) -> None:
    x_train, x_test = pixels(30, (28, 28)), pixels(10, (28, 28), seed=1)
    y_train, y_test = np.arange(30, dtype=np.uint8) % 10, (np.arange(10, dtype=np.int64) % 10)[:, None]
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    dm = ImageFiles(path=str(tmp_path / "mnist.npz"))
    dm.setup("fit")
    assert dm.splits["train"][0].shape == (30, 1, 28, 28) and dm.splits["test"][0].shape == (10, 1, 28, 28)
    assert dm.splits["train"][1].tolist() == y_train.tolist() and dm.splits["test"][1].tolist() == list(range(10))
    assert torch.equal(dm.splits["train"][0][:, 0], torch.from_numpy(x_train).float() / 255)
    assert dm.provenance["counts"] == {"train": 30, "val": 10, "test": 10}


def test_one_array_with_labels_is_split_by_split_seed(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", images=pixels(50, (3, 9, 9)), labels=np.arange(50))
    dm = ImageFiles(path=str(tmp_path / "one.npz"), test_size=10)
    dm.setup("fit")
    train_labels, test_labels = dm.splits["train"][1], dm.splits["test"][1]
    assert dm.image_shape == (3, 9, 9) and len(test_labels) == 10
    assert sorted(train_labels.tolist() + test_labels.tolist()) == list(range(50))


def test_the_checksum_changes_when_one_byte_changes(tmp_path: Path) -> None:
    images = pixels(8, (6, 6))
    np.savez(tmp_path / "a.npz", images=images)
    images[3, 2, 2] ^= 1
    np.savez(tmp_path / "b.npz", images=images)
    digests = []
    for name in ("a.npz", "b.npz"):
        dm = ImageFiles(path=str(tmp_path / name), test_size=2)
        dm.setup("fit")
        digests.append(dm.provenance["sha256"])
        assert digests[-1] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()  # what sha256sum prints
    assert digests[0] != digests[1]
    folder = png_folder(tmp_path / "pngs", pixels(4, (6, 6)))
    before = ImageFiles(path=str(folder), test_size=1)
    before.setup("fit")
    png_folder(folder, np.concatenate([pixels(3, (6, 6)), images[3:4]]))
    after = ImageFiles(path=str(folder), test_size=1)
    after.setup("fit")
    assert before.provenance["sha256"] != after.provenance["sha256"]


@pytest.mark.parametrize("shape", [(10, 3, 4, 3), (10, 1, 5, 1), (10, 32, 3), (10, 5, 6, 7)])
def test_a_shape_whose_channels_cannot_be_told_is_refused_naming_it(tmp_path: Path, shape: tuple) -> None:
    np.savez(tmp_path / "odd.npz", images=np.zeros(shape, np.uint8))
    with pytest.raises(VaeLabError) as caught:
        ImageFiles(path=str(tmp_path / "odd.npz"), test_size=2).image_shape  # noqa: B018
    assert str(shape) in str(caught.value) and "\n" not in str(caught.value)


def test_float_images_are_refused_naming_the_dtype(tmp_path: Path) -> None:
    np.savez(tmp_path / "float.npz", x_train=np.zeros((4, 8, 8), np.float32), x_test=np.zeros((2, 8, 8), np.float32))
    with pytest.raises(VaeLabError, match=r"holds float32 images of shape \(4, 8, 8\); use uint8"):
        ImageFiles(path=str(tmp_path / "float.npz")).setup("fit")


def test_a_corrupt_png_is_named_in_one_sentence(tmp_path: Path) -> None:
    folder = png_folder(tmp_path / "pngs", pixels(4, (6, 6)))
    broken = folder / "002.png"
    broken.write_bytes(broken.read_bytes()[:30])
    with pytest.raises(VaeLabError) as caught:
        ImageFiles(path=str(folder), test_size=1).image_shape  # noqa: B018
    assert str(caught.value).startswith(f"{broken} ") and "\n" not in str(caught.value)


def test_an_unreadable_npz_is_named_in_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(VaeLabError) as caught:
        ImageFiles(path=str(bad)).setup("fit")
    assert str(caught.value).startswith(f"data.path={bad} is not a readable .npz") and "\n" not in str(caught.value)


def test_unknown_array_names_are_refused_naming_them(tmp_path: Path) -> None:
    np.savez(tmp_path / "names.npz", a=pixels(3, (4, 4)), b=pixels(3, (4, 4)))
    with pytest.raises(ConfigError, match=r"has arrays a, b; name them train and test, x_train and x_test"):
        ImageFiles(path=str(tmp_path / "names.npz")).setup("fit")


@pytest.mark.parametrize(("kwargs", "key"), [({"channels": 2}, "data.channels=2"),
                                            ({"test_size": 0}, "data.test_size=0"),
                                            ({"binarize": "otsu"}, "data.binarize=otsu")])
def test_bad_settings_exit_2_with_one_error_line_naming_the_key(tmp_path: Path, kwargs, key, capsys) -> None:
    np.savez(tmp_path / "ok.npz", images=pixels(4, (4, 4)))
    with pytest.raises(SystemExit) as exited:
        exit_on_user_error(lambda _: ImageFiles(path=str(tmp_path / "ok.npz"), **kwargs), None)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {key} ")


def test_a_missing_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^data.path={tmp_path / 'nowhere.npz'} is not a folder of .png files"):
        ImageFiles(path=str(tmp_path / "nowhere.npz"))


def test_a_16_bit_png_is_refused_naming_it(tmp_path: Path) -> None:
    folder = png_folder(tmp_path / "pngs", pixels(2, (6, 6)))
    Image.fromarray(np.full((6, 6), 40_000, np.uint16)).save(folder / "deep.png")
    with pytest.raises(VaeLabError, match=rf"^{folder / 'deep.png'} holds I;16\w* pixels \(not 8-bit"):
        ImageFiles(path=str(folder), test_size=1).image_shape  # noqa: B018


def test_the_images_config_keeps_values_and_channels_by_default(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from tests.conftest import compose_config

    np.savez(tmp_path / "rgb.npz", images=pixels(30, (10, 10, 3)))
    cfg = compose_config("train", ["data=images", f"data.path={tmp_path / 'rgb.npz'}", "data.test_size=5"],
                         tmp_path / "run")
    dm = instantiate(cfg.data)
    assert (dm.hparams.binarize, dm.hparams.channels, dm.image_shape) == ("none", "auto", (3, 10, 10))
