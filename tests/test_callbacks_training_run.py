"""The image callbacks in real (tiny) training runs on MNIST: files in the run directory, images in TensorBoard."""

import math
from pathlib import Path

import imageio.v3 as iio
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator, ImageEvent
from torch import Tensor
from torchvision.utils import make_grid

from vae_lab.callbacks.epoch_images import seeded
from vae_lab.models.cvae import CVAE
from vae_lab.train import train

TINY = ("++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1")


def image_events(run_dir: Path) -> dict[str, list[ImageEvent]]:
    """Every image summary of the run, read with TensorBoard's own reader (size_guidance 0 = keep them all)."""
    events: dict[str, list[ImageEvent]] = {}
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(path), size_guidance={"images": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["images"]:
            events.setdefault(tag, []).extend(accumulator.Images(tag))
    return events


def expected_gif_frames(grids: int) -> int:
    """The tutorial's rule, restated: grid 0, then grid i whenever round(2 sqrt(i)) > round(2 sqrt(i - 1)), then the
    last grid again; a last grid that was already kept shows as one longer frame rather than two identical ones."""
    kept = [0] + [i for i in range(1, grids) if round(2 * math.sqrt(i)) > round(2 * math.sqrt(i - 1))]
    return len(kept) + (0 if kept[-1] == grids - 1 else 1)


def stored_z(checkpoint: Path) -> Tensor:
    states = torch.load(checkpoint, map_location="cpu", weights_only=False)["callbacks"]
    (z,) = [state["z"] for key, state in states.items() if key.startswith("SampleGrid")]
    return z


def assert_grid_is_the_checkpoint_decoding_its_z(grid_png: Path, checkpoint: Path) -> None:
    model = CVAE.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    pixels = make_grid(model.decode_mean(stored_z(checkpoint)), nrow=4).mul(255).add(0.5).clamp(0, 255).byte()
    saved = torch.from_numpy(iio.imread(grid_png)).permute(2, 0, 1)
    assert saved.shape[1:] == (4 * 122, 4 * 122)  # 122 px enlarged 4 times (nearest neighbour) to >= 400 px
    difference = saved[:, ::4, ::4].int() - pixels.int()
    assert difference.abs().max() <= 1


def test_three_epochs_write_grids_0_to_3_a_paced_gif_and_tensorboard_images(make_train_cfg) -> None:
    cfg = make_train_cfg("trainer.max_epochs=3", *TINY)
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)

    grids = sorted(run_dir.glob("image_at_epoch_*.png"))
    assert [grid.name for grid in grids] == [f"image_at_epoch_{epoch:04d}.png" for epoch in range(4)]
    assert not (iio.imread(grids[0]) == iio.imread(grids[3])).all()  # the samples change as the model trains
    assert_grid_is_the_checkpoint_decoding_its_z(grids[3], run_dir / "checkpoints" / "last.ckpt")
    gif = iio.imread(run_dir / "training.gif", index=None)
    assert len(gif) == expected_gif_frames(4) and gif.shape[1:3] == (4 * 122, 4 * 122)  # the readable PNGs

    events = image_events(run_dir)
    for tag in ("samples/grid", "reconstructions/val", "latent/means"):
        assert [event.step for event in events[tag]] == [0, 1, 2, 3], tag
    assert (events["samples/grid"][0].width, events["samples/grid"][0].height) == (122, 122)  # 4 x (28 + 2) + 2
    assert (events["reconstructions/val"][0].width, events["reconstructions/val"][0].height) == (242, 62)  # 8 over 8
    assert "latent/manifold" not in events  # the decoded grid needs latent_dim = 2; the scatter uses PCA here
    (gif_event,) = events["samples/gif"]
    assert gif_event.step == 3
    assert len(iio.imread(gif_event.encoded_image_string, index=None, extension=".gif")) == len(gif)


def test_latent_dim_2_logs_the_quantile_manifold_and_the_latent_scatter(make_train_cfg) -> None:
    cfg = make_train_cfg("model.latent_dim=2", *TINY)
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)

    events = image_events(run_dir)
    assert [event.step for event in events["latent/manifold"]] == [0, 1]
    assert (events["latent/manifold"][0].width, events["latent/manifold"][0].height) == (560, 560)  # 20 x 28 px
    assert [event.step for event in events["latent/means"]] == [0, 1]
    assert iio.imread(run_dir / "latent_manifold.png").shape == (560, 560, 3)
    assert (run_dir / "latent_scatter.png").exists()


def test_without_a_logger_files_are_written_and_a_resumed_run_keeps_the_fixed_z(make_train_cfg) -> None:
    first = make_train_cfg("logger=none", "seed=1", *TINY)
    train(first)
    run_dir = Path(first.paths.output_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    assert not (run_dir / "tensorboard").exists()
    for name in ("image_at_epoch_0000.png", "image_at_epoch_0001.png", "training.gif", "reconstructions.png"):
        assert (run_dir / name).exists(), name
    z_first = stored_z(checkpoint)

    # Resume in the same run directory with another seed: the grid must keep the checkpoint's z, not draw anew.
    resumed = make_train_cfg("seed=2", "trainer.max_epochs=2", f"ckpt_path={checkpoint}", *TINY)
    train(resumed)
    z_resumed = stored_z(checkpoint)
    assert torch.equal(z_resumed, z_first)
    with seeded(2):  # what seed=2 would have drawn
        assert not torch.equal(z_first, torch.randn(z_first.shape))
    assert_grid_is_the_checkpoint_decoding_its_z(run_dir / "image_at_epoch_0002.png", checkpoint)
    assert [event.step for event in image_events(run_dir)["samples/grid"]] == [2]  # no second "untrained" grid
    assert len(iio.imread(run_dir / "training.gif", index=None)) == expected_gif_frames(3)


def test_without_the_checkpoint_callback_no_checkpoint_is_written(make_train_cfg) -> None:
    # Lightning would add its own ModelCheckpoint (tensorboard/checkpoints/epoch=0-step=2.ckpt), which resume=
    # cannot find; callbacks=none means no checkpoints, and resume= says so.
    cfg = make_train_cfg("callbacks=none", *TINY)
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert not list(run_dir.rglob("*.ckpt")) and (run_dir / "manifest.json").exists()
