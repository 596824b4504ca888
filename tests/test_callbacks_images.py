"""The image callbacks on small untrained models, in-process: pictures from the model's own prior and likelihood,
colour kept, grids saved at a readable size, the latent manifold only for a 2-D standard-normal prior."""

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.utils import make_grid

from vae_lab.callbacks.epoch_images import READABLE_PX, readable
from vae_lab.callbacks.latent_manifold import MAX_GRID_SIZE, LatentManifold
from vae_lab.callbacks.reconstructions import Reconstructions
from vae_lab.callbacks.sample_grid import SampleGrid
from vae_lab.errors import ConfigError
from vae_lab.models.mlp_vae import MLPVAE

VAMP = {"_target_": "vae_lab.priors.VampPrior", "components": 3}
MOG = {"_target_": "vae_lab.priors.MixtureOfGaussians", "components": 3}


def trainer_for(tmp_path: Path, images: torch.Tensor | None = None, tensorboard: bool = False) -> SimpleNamespace:
    """What the image callbacks read of a Trainer: its folder, loggers and (for reconstructions) validation data."""
    loggers = [TensorBoardLogger(tmp_path, name="tensorboard", version="")] if tensorboard else []
    datamodule = None if images is None else SimpleNamespace(
        val_dataloader=lambda: [(images, torch.arange(len(images)) % 10)])
    return SimpleNamespace(default_root_dir=str(tmp_path), loggers=loggers, datamodule=datamodule,
                           is_global_zero=True)


def model(latent_dim: int = 4, image_shape: tuple[int, int, int] = (1, 28, 28), prior: dict | None = None) -> MLPVAE:
    torch.manual_seed(0)
    return MLPVAE(latent_dim=latent_dim, image_shape=list(image_shape), hidden=8, prior=prior).eval()


def test_readable_enlarges_by_a_whole_factor_to_400_px_and_keeps_every_pixel() -> None:
    grid = torch.rand(3, 122, 62)
    big = readable(grid)
    assert big.shape == (3, 4 * 122, 4 * 62) and max(big.shape[1:]) >= READABLE_PX
    assert torch.equal(big[:, ::4, ::4], grid) and torch.equal(big[:, 3::4, 3::4], grid)
    assert readable(torch.rand(3, 560, 560)).shape == (3, 560, 560)  # already readable: unchanged


def test_a_colour_model_s_grids_are_colour_in_the_png_and_in_tensorboard(tmp_path: Path) -> None:
    colour = model(image_shape=(3, 8, 8))
    images = torch.rand(4, 3, 8, 8)
    trainer = trainer_for(tmp_path, images, tensorboard=True)
    SampleGrid(dirpath=str(tmp_path), num_samples=4, nrow=2)._render_at(trainer, colour, 0)
    Reconstructions(dirpath=str(tmp_path), num_images=4)._render_at(trainer, colour, 0)
    trainer.loggers[0].experiment.flush()
    for name in ("image_at_epoch_0000.png", "reconstructions.png"):
        with Image.open(tmp_path / name) as png:
            assert png.mode == "RGB" and max(png.size) >= READABLE_PX, name
            pixels = np.asarray(png).astype(int)
        assert (pixels[..., 0] != pixels[..., 1]).any() and (pixels[..., 1] != pixels[..., 2]).any(), name
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    for tag in ("samples/grid", "reconstructions/val"):
        (event,) = events.Images(tag)
        pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
        assert (pixels[..., 0] != pixels[..., 2]).any(), tag  # not a grey image repeated over 3 channels
    # Row 2 of the reconstructions is the likelihood's mean at the posterior's mean.
    with Image.open(tmp_path / "reconstructions.png") as png:
        factor = png.size[0] // (4 * 10 + 2)
        saved = torch.from_numpy(np.asarray(png)[::factor, ::factor].copy()).permute(2, 0, 1)
    expected = make_grid(torch.cat([images, colour.reconstruct(images)]), nrow=4).mul(255).add(0.5).byte()
    assert (saved.int() - expected.int()).abs().max() <= 1


@pytest.mark.parametrize("prior", [None, VAMP, MOG], ids=["standard", "vamp", "mog"])
def test_the_sample_grid_draws_from_the_model_s_prior_the_same_draws_every_time(prior: dict | None,
                                                                                tmp_path: Path) -> None:
    vae = model(prior=prior)
    callback = SampleGrid(dirpath=str(tmp_path), num_samples=6, nrow=3, seed=7)
    trainer = trainer_for(tmp_path)
    before = torch.get_rng_state()
    callback._render_at(trainer, vae, 0)
    first = callback.z
    callback._render_at(trainer, vae, 1)
    assert torch.equal(torch.get_rng_state(), before)  # the training's random stream is untouched
    assert torch.equal(callback.z, first) and first.shape == (6, 4)
    assert (np.asarray(Image.open(tmp_path / "image_at_epoch_0000.png"))
            == np.asarray(Image.open(tmp_path / "image_at_epoch_0001.png"))).all()
    torch.manual_seed(7)  # the prior's own sample(n), from the seeded stream
    assert torch.equal(first, vae.prior.sample(6))
    with Image.open(tmp_path / "image_at_epoch_0000.png") as png:
        factor = png.size[0] // (3 * 30 + 2)
        saved = torch.from_numpy(np.asarray(png)[::factor, ::factor].copy()).permute(2, 0, 1)
    expected = make_grid(vae.decode_mean(first), nrow=3).mul(255).add(0.5).byte()
    assert (saved.int() - expected.int()).abs().max() <= 1
    state = callback.state_dict()  # a resumed run draws from the checkpoint's seed, whatever its own
    resumed = SampleGrid(dirpath=str(tmp_path), num_samples=6, nrow=3, seed=8)
    resumed.load_state_dict(state)
    resumed._render_at(trainer, vae, 2)
    assert torch.equal(resumed.z, first)


@pytest.mark.parametrize(("latent_dim", "prior", "manifold"), [(2, None, True), (2, MOG, False), (2, VAMP, False),
                                                               (3, None, False)])
def test_the_latent_manifold_is_drawn_only_for_a_2d_standard_normal_prior(
    latent_dim: int, prior: dict | None, manifold: bool, tmp_path: Path
) -> None:
    vae = model(latent_dim=latent_dim, prior=prior)
    trainer = trainer_for(tmp_path, torch.rand(30, 1, 28, 28).round())
    LatentManifold(dirpath=str(tmp_path), grid_size=5, num_points=30)._render_at(trainer, vae, 0)
    assert (tmp_path / "latent_manifold.png").exists() == manifold
    assert (tmp_path / "latent_scatter.png").exists()  # the posterior means, whatever the prior
    if manifold:
        with Image.open(tmp_path / "latent_manifold.png") as png:
            assert png.size == (3 * 5 * 28, 3 * 5 * 28)  # 140 px enlarged 3 times


def test_a_latent_manifold_grid_too_large_for_memory_is_refused_with_exit_code_2() -> None:
    # Issue 24: grid_size=300 (90,000 decoded images) peaked at 23.4 GB on a 23 GB machine.
    with pytest.raises(ConfigError, match=r"^callbacks\.latent_manifold\.grid_size=300 ") as error:
        LatentManifold(grid_size=300)
    assert error.value.exit_code == 2 and f"from 1 to {MAX_GRID_SIZE}" in str(error.value)
    assert LatentManifold(grid_size=MAX_GRID_SIZE).grid_size == MAX_GRID_SIZE
