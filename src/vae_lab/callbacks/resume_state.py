"""What a resumed fit needs beyond Lightning's checkpoint to go on as if never interrupted: torch's global CPU
generator (the ELBO's noise; saved with every checkpoint as a byte tensor, put back when training starts, after
Lightning's sanity check, which draws from it too), and TensorBoard's restart marker: a SessionLog.START at step s (what
SummaryWriter(purge_step=s) writes) hides older events with step >= s, so with s the step every metric is logged at
(private, restored by the checkpoint) the interrupted epoch's points do not appear twice."""

from __future__ import annotations

import lightning as L
import torch
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from torch import Tensor

from vae_lab.callbacks.tensorboard import tensorboard_writer


class ResumeState(L.Callback):
    _rng: Tensor | None = None  # from the checkpoint, until training starts

    def state_dict(self) -> dict[str, Tensor]:
        return {"torch": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        self._rng = state_dict["torch"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            self._rng = None
        if trainer.ckpt_path is not None and trainer.is_global_zero and (writer := tensorboard_writer(trainer)):
            step = trainer.fit_loop.epoch_loop._batches_that_stepped
            writer._get_file_writer().add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))
            writer.flush()
