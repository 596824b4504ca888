"""Swept values next to final metrics in TensorBoard's HPARAMS tab, for comparing the jobs of a sweep.

One session per start: the model's and data's hyperparameters plus every command-line override (so every job of a
sweep carries the same keys; a resumed run repeats its first start's, kept in the checkpoint), then its end status.
No experiment summary is written: TensorBoard then shows, as metrics, the last value of each logged scalar.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import lightning as L
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo

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
        from hydra.core.override_parser.overrides_parser import OverridesParser

        if self.first_start is None:  # overrides last: a swept key appears once, typed as the job received it
            modules = (("model", pl_module), ("data", trainer.datamodule))
            hparams = {f"{prefix}.{name}": value for prefix, module in modules if module is not None
                       for name, value in module.hparams.items()}
            hparams |= {override.key_or_group: override.value() for override in
                        OverridesParser.create().parse_overrides(self.overrides) if not override.is_delete()}
            self.first_start = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                                for key, value in hparams.items()}  # TensorBoard's kinds, and weights_only-safe
        start = SessionStartInfo(start_time_secs=time.time())
        for key, value in self.first_start.items():
            if not any(key == prefix or key.startswith(prefix + ".") for prefix in self.exclude):
                field = start.hparams[key]  # a bool before a number: bool is an int in Python
                if isinstance(value, bool):
                    field.bool_value = value
                elif isinstance(value, (int, float)):
                    field.number_value = value
                else:
                    field.string_value = value
        self._write(trainer, metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, api_pb2.STATUS_SUCCESS)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end(trainer, api_pb2.STATUS_FAILURE)

    def _end(self, trainer: L.Trainer, status: int) -> None:
        end = SessionEndInfo(status=status, end_time_secs=time.time())
        self._write(trainer, metadata.SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=end))

    @staticmethod
    def _write(trainer: L.Trainer, tag: str, data: HParamsPluginData) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None and trainer.global_rank == 0:  # no public method for a raw Summary proto
            summary = Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])
            writer._get_file_writer().add_summary(summary)
            writer.flush()
