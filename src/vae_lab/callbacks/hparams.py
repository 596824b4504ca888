"""Swept values next to final metrics in TensorBoard's HPARAMS tab, for comparing the jobs of a sweep.

Each run records one session: its hyperparameters at fit start, and at the end whether it finished or failed; a
resumed run records its first start's hyperparameters again (kept in the checkpoint), not the resume's overrides.
The hyperparameters are the model's and the data's constructor arguments plus every command-line override
(the values a sweeper chose included), so every job of a sweep carries the same keys. No experiment summary is
written: with none present, TensorBoard builds the table from all sessions under `--logdir` and shows, as
metrics, the last value of each scalar (`val/elbo`, `val/kl`, ...), i.e. the final metrics, from the curves
themselves. (Logging copies of the metrics at step 0, as `log_hyperparams(params, metrics)` does, would make
TensorBoard drop the real curves' later points.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import lightning as L
from google.protobuf.struct_pb2 import Value
from lightning.pytorch.callbacks import Callback
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo

from vae_lab.callbacks.tensorboard import tensorboard_writer

HparamValue = bool | int | float | str


class HparamsSummary(Callback):
    """Log `model.*`, `data.*` and the run's overrides as TensorBoard hparams; mark the session's end status.

    `overrides` are Hydra's task overrides (`${hydra:overrides.task}` in the config); keys equal to or under an
    `exclude` entry (directories, Hydra's own settings) are left out, as they differ per machine, not per idea.
    """

    def __init__(
        self, overrides: Iterable[str] = (), exclude: Iterable[str] = ("paths", "hydra", "data.data_dir")
    ) -> None:
        self.overrides = list(overrides)
        self.exclude = tuple(exclude)
        self.first_start: dict[str, HparamValue] | None = None  # restored from the checkpoint on a resume

    def state_dict(self) -> dict[str, object]:
        return {"first_start": self.first_start}

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self.first_start = state_dict.get("first_start")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run's own overrides are `resume=`'s (ckpt_path, max_epochs): it keeps the first start's instead.
        if self.first_start is None:
            self.first_start = run_hparams(pl_module, trainer.datamodule, self.overrides)
        hparams = self.first_start
        start = SessionStartInfo(start_time_secs=time.time())
        for key, value in hparams.items():
            if not self._excluded(key):
                _set_value(start.hparams[key], value)
        self._write(trainer, metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, api_pb2.STATUS_SUCCESS)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end(trainer, api_pb2.STATUS_FAILURE)

    def _end(self, trainer: L.Trainer, status: int) -> None:
        end = SessionEndInfo(status=status, end_time_secs=time.time())
        self._write(trainer, metadata.SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=end))

    def _excluded(self, key: str) -> bool:
        return any(key == prefix or key.startswith(prefix + ".") for prefix in self.exclude)

    @staticmethod
    def _write(trainer: L.Trainer, tag: str, data: HParamsPluginData) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or trainer.global_rank != 0:
            return
        summary = Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])
        # The SummaryWriter has no public method for a raw Summary proto; Lightning's own logger uses this one.
        writer._get_file_writer().add_summary(summary)
        writer.flush()


def run_hparams(
    pl_module: L.LightningModule, datamodule: L.LightningDataModule | None, overrides: Iterable[str]
) -> dict[str, HparamValue]:
    """`{"model.latent_dim": 2, "model.lr": 0.0001, "data.batch_size": 100, ..., "trainer.max_epochs": 1}`.

    Overrides come last so a swept key appears once, with the value as the job received it (typed: 2, not "2").
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hparams: dict[str, HparamValue] = {}
    for prefix, module in (("model", pl_module), ("data", datamodule)):
        if module is not None:
            hparams |= {f"{prefix}.{name}": _scalar(value) for name, value in module.hparams.items()}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not override.is_delete():
            hparams[override.key_or_group] = _scalar(override.value())
    return hparams


def _set_value(field: Value, value: HparamValue) -> None:
    if isinstance(value, bool):  # before the number test: bool is an int in Python
        field.bool_value = value
    elif isinstance(value, (int, float)):
        field.number_value = value
    else:
        field.string_value = value


def _scalar(value: object) -> HparamValue:
    """TensorBoard hparams are bools, numbers or strings; anything else (None, lists) is shown as its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)
