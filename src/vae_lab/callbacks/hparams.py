"""Swept values next to final metrics in TensorBoard's HPARAMS tab: one session per start, with the model's and data's
hyperparameters and every command-line override (the same keys in every job of a sweep; a resumed run repeats its
first start's, kept in the checkpoint), ended as a success when the fit ends (a failed run's session stays open; its
result.json says why). No experiment summary is written: TensorBoard then shows each logged scalar's last value."""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
from hydra.core.override_parser.overrides_parser import OverridesParser
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import hparams

from vae_lab.callbacks.tensorboard import tensorboard_writer


class HparamsSummary(L.Callback):
    """`overrides`: Hydra's task overrides; keys equal to or under an `exclude` entry (directories) are left out."""

    def __init__(self, overrides: Iterable[str] = (), exclude: Iterable[str] = ("paths", "hydra", "data.data_dir")
                 ) -> None:
        self.overrides, self.exclude = list(overrides), tuple(exclude)
        self.first_start: dict[str, object] | None = None  # restored from the checkpoint on a resume

    def state_dict(self) -> dict[str, object]:
        return {"first_start": self.first_start}

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self.first_start = state_dict.get("first_start")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first_start is None:  # overrides last: a swept key appears once, typed as the job received it
            modules = (("model", pl_module), ("data", trainer.datamodule))
            found = {f"{prefix}.{name}": value for prefix, module in modules if module is not None
                     for name, value in module.hparams.items()}
            found |= {override.key_or_group: override.value() for override in
                      OverridesParser.create().parse_overrides(self.overrides) if not override.is_delete()}
            self.first_start = {key: value if isinstance(value, (int, float, str)) else str(value)  # weights_only-safe
                                for key, value in found.items()
                                if not any(key == prefix or key.startswith(prefix + ".") for prefix in self.exclude)}
        self._write(trainer, hparams(self.first_start, {})[1])  # the session start; [0], the experiment, is not written

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, hparams(self.first_start, {})[2])  # the session end, status success

    @staticmethod
    def _write(trainer: L.Trainer, summary: Summary) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None and trainer.global_rank == 0:  # no public method for a raw Summary proto
            writer._get_file_writer().add_summary(summary)
            writer.flush()
