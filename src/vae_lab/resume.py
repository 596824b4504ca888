"""Resume an interrupted run in place: `python -m vae_lab.train resume=outputs/<date>/<time>`.

`resume_arguments` rewrites that one argument into Hydra's own: the run's saved `.hydra/config.yaml` becomes the
primary config, the run directory stays the run directory (`.hydra/` is left as the first start wrote it) and
`ckpt_path` points at its `checkpoints/last.ckpt`, so `trainer.fit` restores the weights, optimizer, loops and
every callback's state (e.g. the fixed sample vector). Further overrides apply on top, for this resume only.

`PurgeUnsavedEvents` keeps the TensorBoard curves continuous: whatever was logged after the checkpoint (the
part of an epoch the kill interrupted) is hidden with TensorBoard's own restart marker, so no epoch appears twice.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.event_pb2 import Event, SessionLog

from vae_lab.errors import VaeLabError

CHECKPOINT = Path("checkpoints") / "last.ckpt"
SAVED_CONFIG = Path(".hydra") / "config.yaml"


def find_run(target: str) -> tuple[Path, Path]:
    """(run directory, checkpoint) for `resume=<run dir>` or `resume=<run dir>/checkpoints/<file>.ckpt`."""
    path = Path(target).expanduser().resolve()
    if path.is_file():
        run_dir, checkpoint = path.parent.parent, path
    elif path.is_dir():
        run_dir, checkpoint = path, path / CHECKPOINT
    else:
        raise VaeLabError(
            f"resume={target} does not exist; use resume=<run dir> (e.g. outputs/<date>/<time>) or its last.ckpt."
        )
    if not (run_dir / SAVED_CONFIG).is_file():
        raise VaeLabError(
            f"resume={target} is not a vae_lab run: {run_dir / SAVED_CONFIG} is missing; "
            "use a folder that `python -m vae_lab.train` created."
        )
    if not checkpoint.is_file():
        raise VaeLabError(
            f"resume={target} has no {CHECKPOINT} yet (the run stopped before its first epoch ended); "
            "start it again instead."
        )
    return run_dir, checkpoint


def resume_arguments(argv: list[str]) -> list[str]:
    """Replace `resume=X` in a command line by the Hydra arguments that continue run X in place."""
    target = next(arg for arg in argv if arg.startswith("resume="))
    run_dir, checkpoint = find_run(target.split("=", 1)[1])
    rest = [arg for arg in argv if arg != target]
    return [
        f"--config-path={run_dir / SAVED_CONFIG.parent}",
        f"--config-name={SAVED_CONFIG.stem}",
        *rest,
        f'hydra.run.dir="{run_dir}"',
        "hydra.output_subdir=null",  # keep the first start's .hydra/ (config, overrides) as written
        f'ckpt_path="{checkpoint}"',
    ]


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
