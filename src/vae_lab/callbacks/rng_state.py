"""A resumed run draws the same random numbers as one that was never interrupted.

The ELBO's noise comes from torch's global CPU generator, whose state a Lightning checkpoint does not keep.
`GlobalRngState` saves it with every checkpoint (a byte tensor: loadable with weights_only=True) and puts it back
when a resumed fit starts training, after Lightning's sanity check, which draws from it too.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor


class GlobalRngState(L.Callback):
    def __init__(self) -> None:
        self._restored: Tensor | None = None

    def state_dict(self) -> dict[str, Tensor]:
        return {"torch": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        self._restored = state_dict["torch"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored is not None:
            torch.set_rng_state(self._restored)
            self._restored = None
