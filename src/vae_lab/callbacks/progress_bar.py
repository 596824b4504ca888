"""Lightning's tqdm progress bar, with the epoch counted as people count it: `Epoch 2/2` on the last of two.

Lightning labels epochs from 0 (`Epoch 1/1` on the last of `max_epochs=2`); `trainer.max_epochs` and
`resume=` count them from 1, and so does this label. Everything else is Lightning's `TQDMProgressBar`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class EpochProgressBar(TQDMProgressBar):
    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(epoch_label(trainer))


def epoch_label(trainer: L.Trainer) -> str:
    """`Epoch 3/10`: the epoch being trained, 1-based, and the planned count (`Epoch 3` when there is none)."""
    epoch = trainer.current_epoch + 1
    total = trainer.max_epochs
    return f"Epoch {epoch}/{total}" if total is not None and total > 0 else f"Epoch {epoch}"
