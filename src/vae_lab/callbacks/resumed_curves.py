"""A resumed run's TensorBoard curves go on without the interrupted epoch's points logged twice."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.event_pb2 import Event, SessionLog


class PurgeUnsavedEvents(L.Callback):
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None or not trainer.is_global_zero:
            return
        # The step every metric is logged at (private, restored by the checkpoint): events at or after it come from
        # the epoch being redone. A SessionLog.START at step s makes TensorBoard drop older events with step >= s
        # (what SummaryWriter(purge_step=s) writes).
        purge_step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment._get_file_writer()
                writer.add_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
                writer.flush()
