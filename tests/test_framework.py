"""Models, objectives and datasets as config: each trains, continues from ckpt_path, evaluates and samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import compose_config, small_train_overrides
from vae_lab.errors import VaeLabError
from vae_lab.evaluate import evaluate
from vae_lab.models import CVAE, MLPVAE
from vae_lab.objectives import iwae_bound
from vae_lab.sample import sample
from vae_lab.train import train

TINY = ["++trainer.limit_train_batches=3", "++trainer.limit_val_batches=1", "callbacks.latent_manifold.num_points=50"]


def test_mlp_vae_has_the_burda_architecture() -> None:
    model = MLPVAE()
    linear = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 200), (200, 200), (200, 100)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.decoder.modules()) == 2
    assert model.decode(torch.zeros(3, 50)).mean.shape == (3, 1, 28, 28)


def test_iwae_with_one_sample_is_the_single_sample_elbo() -> None:
    torch.manual_seed(0)
    model, x = MLPVAE(latent_dim=5), torch.bernoulli(torch.rand(4, 1, 28, 28))
    torch.manual_seed(1)
    log_weights = model.log_weights(x, 1)
    torch.manual_seed(1)
    torch.testing.assert_close(iwae_bound(log_weights), model(x)[1].elbo)  # same draw: the bound is the ELBO
    # k copies of one weight: log mean of equal weights is that weight
    assert torch.allclose(iwae_bound(torch.full((7, 2), -3.0)), torch.full((2,), -3.0))
    assert iwae_bound(torch.tensor([[0.0], [math.log(3.0)]])).item() == pytest.approx(math.log(2.0))


def test_beta_weights_the_kl_and_loss_is_logged_apart() -> None:
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(8, 1, 28, 28))
    torch.manual_seed(1)
    bound_1, terms_1 = CVAE(beta=1.0)(x)
    torch.manual_seed(1)
    bound_half, terms_half = CVAE(beta=0.5)(x)
    assert torch.allclose(terms_1.elbo, terms_half.elbo)  # same weights (seeded init), same noise: same ELBO
    assert torch.allclose(bound_half, terms_half.recon - 0.5 * terms_half.kl)
    assert torch.equal(bound_1, terms_1.elbo)


@pytest.mark.parametrize(("value", "message"), [
    ("model.k=3", "model.k=3 is the IWAE's number of samples"),
    ("model.latent_dim=0", "model.latent_dim=0 "),  # the key and value named (the models' own sentences)
    ("model.objective=vi", "model.objective=vi "),
    ("model.latnt_dim=2", "latnt_dim"),
])
def test_bad_model_values_get_one_sentence(make_train_cfg, value: str, message: str) -> None:
    overrides = [value] if not value.startswith("model.latnt") else [f"+{value}"]
    with pytest.raises(VaeLabError, match=None) as error:
        train(make_train_cfg(*overrides))
    assert message in str(error.value)


# One choice here: every choice is killed, resumed (through ckpt_path), evaluated and sampled in
# tests/test_resume_each_choice.py; this one checks ckpt_path= into a new folder from Python.
@pytest.mark.parametrize("choice", [["objective=iwae", "model.k=3"]])
def test_each_choice_trains_continues_evaluates_and_samples(tmp_path: Path, mnist_data_dir: Path,
                                                            choice: list[str]) -> None:
    base = [*small_train_overrides(mnist_data_dir), *TINY, *choice]
    first = train(compose_config("train", base, tmp_path / "a"))
    assert math.isfinite(first["val/elbo"]) and math.isfinite(first["val/loss"])
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    continued = compose_config("train", [*base, "trainer.max_epochs=2", f"ckpt_path={last}"], tmp_path / "b")
    train(continued)
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 1 and saved["global_step"] == 6  # 3 + 3 steps: the epoch counter continued
    metrics = evaluate(compose_config("eval", [f"ckpt_path={last}", "iwae_samples=4", "num_images=20",
                                               f"paths.data_dir={mnist_data_dir}", f"output_dir={tmp_path / 'e'}"],
                                      tmp_path / "e"))
    assert metrics["num_images"] == 20 and metrics["test/iwae"] >= metrics["test/elbo"] - 5
    written = sample(compose_config("sample", [f"ckpt_path={last}", "n=4", f"output_dir={tmp_path / 's'}",
                                               f"paths.data_dir={mnist_data_dir}"], tmp_path / "s"))
    assert written[0].is_file()


def test_dynamic_test_set_is_the_same_whatever_the_seed(mnist_data_dir: Path) -> None:
    from vae_lab.data.mnist import BinarizedMNIST

    sets = []
    for seed in (0, 1):
        datamodule = BinarizedMNIST(data_dir=str(mnist_data_dir), binarize="dynamic", seed=seed)
        datamodule.setup("fit")
        sets.append(datamodule.test_set_md5())
    assert sets[0] == sets[1]
    other = BinarizedMNIST(data_dir=str(mnist_data_dir), binarize="dynamic", binarize_seed=5)
    other.setup("fit")
    assert other.test_set_md5() != sets[0]


def test_images_from_npz_and_png_folder_train(tmp_path: Path, mnist_data_dir: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = (rng.random((60, 28, 28)) * 255).astype(np.uint8)
    np.savez(tmp_path / "digits.npz", images=images)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for index, image in enumerate(images[:30]):
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    for path, test_size in ((tmp_path / "digits.npz", 10), (folder, 5)):
        cfg = compose_config("train", [*small_train_overrides(mnist_data_dir), "callbacks=none", "data=images",
                                       "data.binarize=static", f"data.path={path}", f"data.test_size={test_size}",
                                       "data.batch_size=10"],
                             tmp_path / f"run_{test_size}")
        assert math.isfinite(train(cfg)["val/elbo"])
    small = (rng.random((20, 16, 16)) * 255).astype(np.uint8)
    np.savez(tmp_path / "small.npz", images=small)
    cfg = compose_config("train", [*small_train_overrides(mnist_data_dir), "callbacks=none", "data=images",
                                   f"data.path={tmp_path / 'small.npz'}", "data.test_size=5", "data.binarize=static"],
                         tmp_path / "small")
    with pytest.raises(VaeLabError, match=r"1x16x16.*1x28x28.*model.image_shape=\[1,16,16\]"):
        train(cfg)
    cfg = compose_config("train", [*small_train_overrides(mnist_data_dir), "callbacks=none", "data=images",
                                   f"data.path={tmp_path / 'small.npz'}", "data.test_size=5", "model=mlp_vae",
                                   "data.binarize=static", "model.image_shape=[1,16,16]", "data.batch_size=5"],
                         tmp_path / "small_mlp")
    assert math.isfinite(train(cfg)["val/elbo"])


def test_warm_start_from_starts_a_new_run_from_the_weights(tmp_path: Path, mnist_data_dir: Path) -> None:
    base = [*small_train_overrides(mnist_data_dir), *TINY]
    train(compose_config("train", base, tmp_path / "a"))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    train(compose_config("train", [*base, f"warm_start_from={last}"], tmp_path / "b"))
    saved = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0 and saved["global_step"] == 3  # a new run: its counters start at 0
    with pytest.raises(VaeLabError, match="warm_start_from=.* does not hold the weights of this CVAE"):
        train(compose_config("train", [*base, "model.latent_dim=3", f"warm_start_from={last}"], tmp_path / "c"))
    with pytest.raises(VaeLabError, match="ckpt_path=.* does not fit this CVAE"):
        train(compose_config("train", [*base, "model.latent_dim=3", f"ckpt_path={last}"], tmp_path / "d"))
