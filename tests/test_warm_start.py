"""`warm_start_from=` on a training run: a new run that starts from a checkpoint's weights (not a resume)."""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from tests.conftest import compose_config, small_train_overrides
from vae_lab.checkpoints import check_continues, warm_start
from vae_lab.errors import ConfigError, VaeLabError
from vae_lab.models.cvae import CVAE
from vae_lab.train import train


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("first")
    train(compose_config("train", [*small_train_overrides(mnist_data_dir), "logger=none"], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def test_the_model_gets_the_checkpoints_weights(first_run: Path) -> None:
    model = CVAE()
    warm_start(model, first_run)
    saved = torch.load(first_run, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in saved.items())


def test_a_warm_started_run_trains_its_own_epochs_from_zero(first_run: Path, mnist_data_dir: Path,
                                                             tmp_path: Path) -> None:
    cfg = compose_config("train", [*small_train_overrides(mnist_data_dir), "logger=none", "trainer.max_epochs=2",
                                   f"warm_start_from={first_run}"], tmp_path)
    train(cfg)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2 * 4  # 2 epochs of 4 batches, counted anew
    # Its own grids from epoch 0 (the warm-started model), and a GIF of them.
    assert sorted(path.name for path in tmp_path.glob("image_at_epoch_*.png")) == [
        f"image_at_epoch_{epoch:04d}.png" for epoch in range(3)
    ]
    assert iio.imread(tmp_path / "training.gif", index=None).shape[0] >= 2
    # Grid 0 is the checkpoint's model decoding the same fixed z (same seed): the first run's last grid.
    np.testing.assert_array_equal(iio.imread(tmp_path / "image_at_epoch_0000.png"),
                                  iio.imread(first_run.parent.parent / "image_at_epoch_0001.png"))


def test_a_warm_start_from_the_runs_own_folder_is_refused(first_run: Path, mnist_data_dir: Path,
                                                          tmp_path: Path) -> None:
    own = tmp_path / "checkpoints" / "last.ckpt"
    own.parent.mkdir(parents=True)
    shutil.copy(first_run, own)
    cfg = compose_config("train", [*small_train_overrides(mnist_data_dir), "logger=none", f"warm_start_from={own}"],
                         tmp_path)
    with pytest.raises(VaeLabError, match=r"is a checkpoint of this run's own folder, but a warm start is a new run"):
        train(cfg)


def test_a_checkpoint_of_another_size_or_no_file_is_refused_before_the_run(first_run: Path) -> None:
    with pytest.raises(VaeLabError) as refused:
        warm_start(CVAE(latent_dim=8), first_run)
    assert str(refused.value).startswith(f"warm_start_from={first_run} does not hold the weights of this CVAE")
    assert "decoder.dense.weight is (1568, 50), not (1568, 8)" in str(refused.value)
    with pytest.raises(VaeLabError, match=r"^ckpt_path=\S+nope.ckpt cannot be read \(No such file"):
        check_continues(CVAE(), first_run.parent / "nope.ckpt", None)
    warm_start(CVAE(), first_run)  # the right size passes


def test_ckpt_path_at_a_finished_run_is_refused_not_reported_completed(first_run: Path, mnist_data_dir: Path,
                                                                       tmp_path: Path) -> None:
    # It used to exit 0 with "run finished" and `completed`, having trained nothing and written no checkpoint.
    cfg = compose_config("train", [*small_train_overrides(mnist_data_dir), "logger=none", f"ckpt_path={first_run}"],
                         tmp_path)
    with pytest.raises(ConfigError, match=r"^ckpt_path=\S+ has nothing to train: it has finished 1 epochs and "
                                          r"trainer.max_epochs is 1; add trainer.max_epochs=N with N > 1\.$"):
        train(cfg)
