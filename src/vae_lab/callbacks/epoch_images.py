"""The schedule every image callback shares: a picture before training, then one after every n-th epoch.

Step numbers count finished epochs, so step 0 is the untrained model (the tutorial's `image_at_epoch_0000`),
and step e + 1 is drawn when epoch e (0-based) ends. Each picture is saved as a PNG in `dirpath` (also when
TensorBoard is off), enlarged without blurring (nearest neighbour) so that its longer side is at least
`READABLE_PX` (the tutorial's grids are ~400 px; 4 x 4 MNIST digits are 122), and logged to TensorBoard at its
own size at that step when a TensorBoardLogger is present. Colour images stay colour.

Rendering does not shift the random stream the training itself uses: draws from the model (its prior's
`sample`) happen inside `seeded`, which restores torch's stream afterwards; the rest draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.utils import save_image

from vae_lab.atomic_files import atomic_write
from vae_lab.callbacks.tensorboard import tensorboard_writer
from vae_lab.errors import VaeLabError, check_positive

READABLE_PX = 400  # the longer side of a saved grid, at least


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Torch's global random stream (CPU and every CUDA device) seeded with `seed` inside, restored on exit: the
    model's own `prior.sample(n)` and `rsample` draw the same numbers each time, and the caller's stream (the
    training's, a resumed run's) goes on as if nothing had been drawn."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()), device_type="cuda"):
        torch.manual_seed(seed)
        yield


def readable(image: Tensor, min_side: int = READABLE_PX) -> Tensor:
    """A (C, H, W) image enlarged by a whole factor (each pixel a square block) until its longer side is at least
    `min_side`: sharp pixels, and the original back by taking every factor-th pixel."""
    factor = max(1, math.ceil(min_side / max(image.shape[-2:])))
    return image.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1) if factor > 1 else image


def figure_image(figure: Figure) -> Tensor:
    """A matplotlib figure drawn once with the Agg backend into a (3, H, W) image in [0, 1]."""
    canvas = FigureCanvasAgg(figure)  # Agg draws without a display and without pyplot's global state
    figure.tight_layout()
    canvas.draw()
    rgba = torch.from_numpy(np.asarray(canvas.buffer_rgba()).copy())
    return rgba[..., :3].permute(2, 0, 1).float() / 255.0


def validation_images(trainer: L.Trainer, count: int) -> tuple[Tensor, Tensor]:
    """The first `count` validation images and labels (on the CPU), in the datamodule's fixed order."""
    if trainer.datamodule is None:
        raise VaeLabError("trainer.datamodule is None; the image callbacks need trainer.fit(model, datamodule=...).")
    images, labels, taken = [], [], 0
    for x, y in trainer.datamodule.val_dataloader():
        images.append(x[: count - taken].cpu())
        labels.append(y[: count - taken].cpu())
        taken += len(images[-1])
        if taken == count:
            break
    return torch.cat(images), torch.cat(labels)


class EpochImageCallback(Callback):
    """Base class: subclasses implement `render(trainer, pl_module, step)` and publish with `save_grid`."""

    config_key: str  # each subclass: "callbacks.<its entry in conf/callbacks>", named in its errors

    def __init__(self, dirpath: str | None = None, every_n_epochs: int = 1) -> None:
        check_positive(f"{self.config_key}.every_n_epochs", every_n_epochs, 1)
        self.dirpath = dirpath
        self.every_n_epochs = every_n_epochs

    def render(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        raise NotImplementedError

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run already drew step 0 (and a mid-epoch-0 checkpoint is no longer the untrained model).
        if trainer.current_epoch == 0 and trainer.ckpt_path is None:
            self._render_at(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.current_epoch + 1
        if step % self.every_n_epochs == 0 or step == trainer.max_epochs:
            self._render_at(trainer, pl_module, step)

    def _render_at(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        if not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                self.render(trainer, pl_module, step)
        finally:
            pl_module.train(was_training)

    def output_dir(self, trainer: L.Trainer) -> Path:
        directory = Path(self.dirpath if self.dirpath is not None else trainer.default_root_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def save_grid(self, trainer: L.Trainer, grid: Tensor, tag: str, filename: str, step: int) -> Path:
        """Save a (C, H, W) image in [0, 1] as `filename`, enlarged to a readable size (`readable`), and log it to
        TensorBoard under `tag` at `step` at its own size."""
        path = self.output_dir(trainer) / filename
        atomic_write(path, lambda stream: save_image(readable(grid), stream, format="png"))  # never half-written
        writer = tensorboard_writer(trainer)
        if writer is not None:
            writer.add_image(tag, grid, global_step=step)
        return path
