"""Resumed runs continue the same TensorBoard curves, with no epoch logged twice.

When a run is killed mid-epoch, its events file already holds whatever that epoch logged before the kill; the
resumed process redoes the epoch from the last checkpoint and logs it again. `PurgeUnsavedEvents` writes
TensorBoard's own restart marker so the reader drops the interrupted epoch's events.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.event_pb2 import Event, SessionLog


class PurgeUnsavedEvents(L.Callback):
    """On a resumed fit, hide TensorBoard events logged after the checkpoint (their epoch is being redone)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None or not trainer.is_global_zero:
            return
        # Lightning logs at this step counter (private, but it is the `step` of every logged metric). The
        # checkpoint restored it; everything the checkpointed epochs logged has a smaller step, everything at this
        # step or later came from the interrupted epoch. A SessionLog.START event at step s makes TensorBoard drop
        # older events with step >= s (exactly what SummaryWriter(purge_step=s) writes).
        purge_step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment._get_file_writer()
                writer.add_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
                writer.flush()
