"""The tutorial's animation: the per-epoch sample grids assembled into one GIF when training ends."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from vae_lab.atomic_files import atomic_write
from vae_lab.callbacks.sample_grid import PNG_GLOB
from vae_lab.callbacks.tensorboard import tensorboard_writer
from vae_lab.errors import check_positive, refuse


def tutorial_frame_order(count: int) -> list[int]:
    """Which of `count` grids the tutorial's GIF shows, in order: grid i is kept when round(2 * sqrt(i))
    exceeds the value at the last kept grid (so later epochs are thinned out), then the last grid again."""
    if count == 0:
        return []
    order, last = [], -1.0
    for i in range(count):
        frame = 2 * math.sqrt(i)
        if round(frame) > round(last):
            last = frame
            order.append(i)
    return [*order, count - 1]


def frame_order(count: int, pacing: str) -> list[int]:
    if pacing == "every":
        return list(range(count))
    return tutorial_frame_order(count)


def hold_repeats(order: list[int], frame_ms: int) -> tuple[list[int], list[int]]:
    """Write a repeated grid once and show it longer (GIF encoders merge identical neighbours anyway)."""
    frames: list[int] = []
    durations: list[int] = []
    for index in order:
        if frames and frames[-1] == index:
            durations[-1] += frame_ms
        else:
            frames.append(index)
            durations.append(frame_ms)
    return frames, durations


def log_gif(writer: SummaryWriter, tag: str, path: Path, step: int) -> None:
    """Log a GIF file as an image summary; TensorBoard's Images tab plays it (as it does add_video's output)."""
    height, width = iio.improps(path, index=0).shape[:2]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=path.read_bytes())
    # SummaryWriter has no public call for pre-encoded images; its own add_video goes through this file writer.
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


class TrainingGif(Callback):
    """At the end of training, animate every `image_at_epoch_NNNN.png` in `dirpath` into `filename`.

    `pacing="tutorial"` keeps the tutorial's thinning (`tutorial_frame_order`); `"every"` shows every grid.
    Logged to TensorBoard as `samples/gif` (an animated image in the Images tab) at the last grid's epoch.
    Note: two pixel-identical consecutive grids become one GIF frame shown twice as long.
    """

    def __init__(
        self, dirpath: str | None = None, filename: str = "training.gif",
        pacing: Literal["tutorial", "every"] = "tutorial", frame_ms: int = 100,
    ) -> None:
        if pacing not in ("tutorial", "every"):
            raise refuse("callbacks.gif.pacing", pacing, "tutorial (the tutorial's thinning) or every (every grid)")
        check_positive("callbacks.gif.frame_ms", frame_ms, 100)
        self.dirpath, self.filename, self.pacing, self.frame_ms = dirpath, filename, pacing, frame_ms

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        directory = Path(self.dirpath if self.dirpath is not None else trainer.default_root_dir)
        grids = sorted(directory.glob(PNG_GLOB))
        if not grids:
            rank_zero_warn(f"No {PNG_GLOB} in {directory} (is the sample_grid callback on?); no GIF written.")
            return
        frames, durations = hold_repeats(frame_order(len(grids), self.pacing), self.frame_ms)
        path = directory / self.filename
        # Pillow takes a list of durations only for several frames (one grid: a run warm-started from a checkpoint).
        duration = durations if len(durations) > 1 else durations[0]
        frames_array = np.stack([iio.imread(grids[i]) for i in frames])
        atomic_write(path, lambda stream: stream.write(iio.imwrite("<bytes>", frames_array, extension=".gif",
                                                                duration=duration, loop=0)))
        writer = tensorboard_writer(trainer)
        if writer is not None:
            log_gif(writer, "samples/gif", path, step=int(grids[-1].stem.rsplit("_", 1)[1]))
