"""Find the TensorBoard writer of a run, whichever other loggers sit next to it."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter


def tensorboard_writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the first TensorBoardLogger in `trainer.loggers`; None when TensorBoard is off."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
