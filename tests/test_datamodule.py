from pathlib import Path

import pytest
import torch

from vae_lab.data.batches import EpochPermutation, TensorBatches
from vae_lab.data.datamodule import binarize_static
from vae_lab.data.mnist import BinarizedMNIST
from vae_lab.errors import VaeLabError


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
    ("kwargs", "message"),
    [
        ({"binarize": "maybe"}, "data.binarize='maybe' is not allowed; use one of static, dynamic."),
        ({"batch_size": -5}, "data.batch_size=-5 is not allowed"),
        ({"val_size": -1}, "data.val_size=-1 is not allowed"),
    ],
)
def test_bad_values_are_refused_in_one_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(VaeLabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BinarizedMNIST(**kwargs)


def test_a_validation_split_of_every_training_image_is_refused(mnist_data_dir) -> None:
    with pytest.raises(VaeLabError, match=r"^data.val_size=60000 holds out every training image \(there are 60000\)"):
        BinarizedMNIST(data_dir=str(mnist_data_dir), val_size=60_000).setup("fit")
