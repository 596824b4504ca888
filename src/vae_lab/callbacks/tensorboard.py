"""The SummaryWriter of a run's first TensorBoardLogger, whichever other loggers sit next to it; None without one."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter


def tensorboard_writer(trainer: L.Trainer) -> SummaryWriter | None:
    return next((logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)
