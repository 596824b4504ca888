"""How the networks run, chosen apart from what they compute: memory layout and torch.compile.

Applied when the fit (or test) sets up, to whatever model is trained, and never stored as a model
hyperparameter: a checkpoint records what the model is, not how it was run.
  channels_last  NHWC layout for 4-D weights (oneDNN's preferred one on CPU, tensor cores' on GPU); inputs follow
                 the weights. A no-op for models without convolutions.
  compile        null (eager) | default | reduce-overhead (CUDA graphs, GPU) | max-autotune: torch.compile of the
                 encoder and decoder, lazily at the first step; parameter names (checkpoints) are unchanged.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from vae_lab.config_checks import check_arguments

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]


class Runtime(Callback):
    def __init__(self, channels_last: bool = True, compile: CompileMode | None = None) -> None:
        check_arguments(Runtime, locals(), "callbacks.runtime")
        self.channels_last, self.compile = channels_last, compile
        self._applied = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._applied:
            return
        self._applied = True
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile is not None:
            for network in (pl_module.encoder, pl_module.decoder):
                network.compile(mode=self.compile)
