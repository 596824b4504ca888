"""A resumed fit goes on as if it had never stopped: the same random numbers, the same TensorBoard curves.

The data order and the sample grid have their own seeded generators, but the ELBO's noise (`randn_like` in the
training and validation steps) comes from torch's global CPU generator, whose state a Lightning checkpoint does not
keep. It is saved with every checkpoint (a byte tensor: loadable with weights_only=True) and put back when a resumed
fit starts training, after Lightning's sanity check, which draws from it too. (On a GPU the noise comes from the
CUDA generator, whose kernels are not bitwise deterministic anyway: README, Reproducibility.)

A run killed mid-epoch has already written that epoch's events, and the resumed process logs the epoch again:
TensorBoard's own restart marker makes the reader drop the interrupted epoch's events.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from torch import Tensor


class ResumeState(L.Callback):
    def __init__(self) -> None:
        self._rng: Tensor | None = None

    def state_dict(self) -> dict[str, Tensor]:
        return {"torch": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        self._rng = state_dict["torch"]  # applied in on_train_start, once the sanity check has drawn its noise

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            self._rng = None
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
