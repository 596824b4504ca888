import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from torchvision.datasets.mnist import read_image_file

from vae_lab.data.batches import EpochPermutation, TensorBatches
from vae_lab.data.datamodule import binarize_static
from vae_lab.data.mnist import BinarizedMNIST
from vae_lab.data.mnist_files import OFFICIAL_MD5
from vae_lab.errors import ConfigError


def test_static_binarization_thresholds_pixels_over_255_at_one_half() -> None:
    pixels = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    assert binarize_static(pixels).tolist() == [0.0, 0.0, 1.0, 1.0]  # 127/255 = 0.498, 128/255 = 0.502


def test_default_split_trains_on_60k_and_validates_on_the_test_set(mnist_data_dir: Path) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), batch_size=100)
    dm.prepare_data()
    dm.setup("fit")
    train_x, train_y = dm.splits["train"]
    val_x, _ = dm.splits["val"]
    assert train_x.shape == (60_000, 1, 28, 28) and val_x.shape == (10_000, 1, 28, 28)
    assert set(torch.unique(train_x).tolist()) == {0.0, 1.0}
    assert dm.splits["val"][0] is dm.splits["test"][0]
    assert torch.bincount(train_y).tolist()[:3] == [5923, 6742, 5958]  # official class counts of MNIST train
    assert 0.12 < train_x.mean().item() < 0.14
    assert len(dm.train_dataloader()) == 600 and len(dm.val_dataloader()) == 10


def test_holdout_split_carves_validation_from_train_and_keeps_test(mnist_data_dir: Path) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), val_size=5000, seed=3)
    dm.setup("fit")
    assert len(dm.splits["train"][0]) == 55_000 and len(dm.splits["val"][0]) == 5000
    assert len(dm.splits["test"][0]) == 10_000
    assert dm.splits["val"][0] is not dm.splits["test"][0]


def test_dynamic_binarization_redraws_each_epoch_reproducibly(mnist_data_dir: Path) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), binarize="dynamic", batch_size=50, shuffle=False)
    dm.setup("fit")
    probabilities = dm.splits["train"][0]
    assert probabilities.max() <= 1.0 and len(torch.unique(probabilities)) > 2
    loader = dm.train_dataloader()
    first = next(iter(loader))[0]
    again = next(iter(loader))[0]
    loader.sampler.set_epoch(1)
    next_epoch = next(iter(loader))[0]
    assert set(torch.unique(first).tolist()) == {0.0, 1.0}
    assert torch.equal(first, again)
    assert not torch.equal(first, next_epoch)
    # Pixels that are exactly 0 or 1 stay so; the mean follows the probabilities.
    assert torch.all(first[probabilities[:50] == 0] == 0)


def test_shuffle_depends_on_seed_and_epoch_only() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochPermutation(10, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)
    assert sorted(order(1, 0)) == list(range(10))


def test_ranks_get_disjoint_equal_shards_covering_every_example() -> None:
    shards = [list(EpochPermutation(11, shuffle=True, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert set(shards[0]) | set(shards[1]) == set(range(11))


def test_batches_are_slices_of_the_tensors() -> None:
    images = torch.arange(10.0).view(10, 1, 1, 1)
    labels = torch.arange(10)
    loader = TensorBatches(images, labels, batch_size=4, sampler=EpochPermutation(10, shuffle=False, seed=0))
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert batches[2][1].tolist() == [8, 9] and batches[2][0].flatten().tolist() == [8.0, 9.0]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"binarize": "maybe"}, "data.binarize=maybe"),
        ({"batch_size": -5}, "data.batch_size=-5"),
        ({"eval_batch_size": 0}, "data.eval_batch_size=0"),
        ({"val_size": -1}, "data.val_size=-1"),
        ({"threshold": 1.0}, "data.threshold=1.0"),
        ({"seed": -1}, "data.seed=-1"),
        ({"binarize_seed": 2**32}, f"data.binarize_seed={2**32}"),
        ({"data_device": "gpu"}, "data.data_device=gpu"),
    ],
)
def test_bad_values_are_refused_in_one_sentence_naming_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        BinarizedMNIST(**kwargs)
    message = str(caught.value)
    assert message.startswith(f"{key} ") and "\n" not in message and caught.value.exit_code == 2


def test_a_validation_split_of_every_training_image_is_refused(mnist_data_dir) -> None:
    with pytest.raises(ConfigError, match=r"^data.val_size=60000 .*below 60000"):
        BinarizedMNIST(data_dir=str(mnist_data_dir), val_size=60_000).setup("fit")


def short_sha(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()[:16]


# Computed with main's code at af54bf7 (before binarize=none existed), seed=7, batch_size=64: the first train batch
# (images, labels), the first train batch of epoch 3, the first val batch, the whole train and test tensors.
MAIN_BATCHES = {
    ("static", 0): ("5d28f7b62122b1ed", "81e1edf78f1bd4a5", "722e237de0ebdbc8", "f991f7a0fcbf76e0",
                    "1cbea85c66821e61", "7ec2f4edb0d98617", "b8e7565524413dbf36b6b64f458f39f9"),
    ("static", 5000): ("545bad0365b30f76", "534ad57ea42fba72", "4774fe3b11bfd9f8", "2ae0be999dd999ac",
                       "0e07f22e6eb54b30", "7ec2f4edb0d98617", "b8e7565524413dbf36b6b64f458f39f9"),
    ("dynamic", 0): ("c4ec19535a210a6a", "81e1edf78f1bd4a5", "f87a7392074c5c95", "1bd872f795315461",
                     "257f039238a0be15", "5ab231e9fc29c56c", "76750b88e2a02924d6983f075dc01bd4"),
    ("dynamic", 5000): ("9f260b605801c6a5", "534ad57ea42fba72", "709c46213f0fe52a", "d940f9870756fb2e",
                        "686cd15315ed18fe", "5ab231e9fc29c56c", "76750b88e2a02924d6983f075dc01bd4"),
}


@pytest.mark.parametrize(("binarize", "val_size"), list(MAIN_BATCHES), ids=[f"{b}-{v}" for b, v in MAIN_BATCHES])
def test_static_and_dynamic_batches_are_bit_identical_to_mains(binarize: str, val_size: int, mnist_data_dir) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), binarize=binarize, val_size=val_size, seed=7, batch_size=64)
    dm.setup("fit")
    loader = dm.train_dataloader()
    x0, y0 = next(iter(loader))
    loader.sampler.set_epoch(3)
    x3, _ = next(iter(loader))
    found = (short_sha(x0), short_sha(y0), short_sha(x3), short_sha(next(iter(dm.val_dataloader()))[0]),
             short_sha(dm.splits["train"][0]), short_sha(dm.splits["test"][0]), dm.test_set_md5())
    assert found == MAIN_BATCHES[(binarize, val_size)]


def test_binarize_none_keeps_the_256_grey_levels_as_pixels_over_255(mnist_data_dir: Path) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), binarize="none", batch_size=100)
    dm.setup("fit")
    raw = read_image_file(str(mnist_data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte"))
    x, _ = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (1000, 1, 28, 28)
    assert torch.equal(x, raw[:1000].unsqueeze(1).float() / 255.0)
    levels = torch.unique(dm.splits["train"][0])
    assert len(levels) == 256 and levels.min() == 0.0 and levels.max() == 1.0
    train_x, _ = next(iter(dm.train_dataloader()))
    assert len(torch.unique(train_x)) > 2  # no Bernoulli draw per batch
    assert dm.image_shape == (1, 28, 28) and dm.hparams.binarize == "none"


def test_provenance_names_the_files_their_sha256_and_what_was_done(mnist_data_dir: Path, caplog) -> None:
    dm = BinarizedMNIST(data_dir=str(mnist_data_dir), binarize="static")
    with pytest.raises(RuntimeError):
        dm.provenance  # noqa: B018  known after setup only
    with caplog.at_level(logging.INFO, logger="vae_lab.data"):
        dm.setup("fit")
    record = dm.provenance
    raw = mnist_data_dir / "MNIST" / "raw"
    lines = "".join(f"{hashlib.sha256((raw / name).read_bytes()).hexdigest()}  {name}\n" for name in OFFICIAL_MD5)
    assert record["sha256"] == hashlib.sha256(lines.encode()).hexdigest()  # `sha256sum <the four files> | sha256sum`
    assert record["files"] == [str(raw / name) for name in OFFICIAL_MD5] and record["num_files"] == 4
    assert record["image_shape"] == [1, 28, 28]
    assert (record["binarize"], record["threshold"], record["values"]) == ("static", 0.5, "binary")
    assert record["counts"] == {"train": 60_000, "val": 10_000, "test": 10_000} and record["val_is_test"]
    assert [r.getMessage() for r in caplog.records if r.name == "vae_lab.data"] == [record["summary"]]
    assert record["summary"].startswith("data: 70000 grey 28x28 images from ") and record["sha256"][:12] in \
        record["summary"]
    dm.setup("test")  # set up once: the line is not logged again
    assert len([r for r in caplog.records if r.name == "vae_lab.data"]) == 1
    json.dumps(record)  # goes into manifest.json as it is


def test_provenance_of_data_made_in_memory_hashes_the_arrays() -> None:
    from tests.toy_project.toy_vae import ToyBars

    dm = ToyBars(binarize="dynamic")
    dm.setup("fit")
    images, labels, test_images, test_labels = dm.load()
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in (images, labels, test_images, test_labels)))
    assert dm.provenance["sha256"] == digest.hexdigest() and dm.provenance["files"] == []
    assert (dm.provenance["binarize_seed"], dm.provenance["threshold"]) == (0, None)
