"""One run, one folder: a new run or sweep never writes into a folder that already holds one.

Default folder names carry microseconds (conf/hydra/default.yaml), so they do not collide; an explicit
`hydra.run.dir=X` / `hydra.sweep.dir=X` that already holds a run or a sweep is refused by `OneRunPerFolder`, a
Hydra callback whose `on_run_start` / `on_multirun_start` run before Hydra creates the folder (and which also
refuse, in one sentence, a folder that cannot be written: a read-only or full disk). Continuing the run
or sweep that lives there (`resume=X`, or `ckpt_path=` one of a run's checkpoints) is what that folder is for, and
is allowed. A new sweep's folder gets the sweep's record, `multirun.yaml`, at once, for every sweeper (Hydra's
basic one writes it later, Optuna's never), so that `resume=<sweep dir>` can start the same sweep again.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vae_lab.atomic_files import atomic_write_text
from vae_lab.errors import USAGE_EXIT, print_error

# What a vae_lab run or sweep leaves in its folder (Hydra's `.hydra/` and `multirun.yaml`, vae_lab's own files).
RUN_MARKERS = (".hydra", "result.json", "manifest.json", "checkpoints", "train.log")
SWEEP_RECORD = "multirun.yaml"  # the sweep's config and command line, which resume=<sweep dir> starts again
SWEEP_MARKERS = (SWEEP_RECORD, "optuna.db")
# A DDP process other than the global rank 0 (a rank Lightning started, another node, a SLURM task) shares its folder.
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")


def holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_MARKERS)


def holds_sweep(folder: Path) -> bool:
    return any((folder / name).exists() for name in SWEEP_MARKERS) or (
        folder.is_dir() and any(holds_run(job) for job in folder.iterdir() if job.is_dir())
    )


def continues_run(config: DictConfig, run_dir: Path) -> bool:
    """True when the run continues a checkpoint kept in `run_dir` (what `resume=<run dir>` spells)."""
    ckpt_path = config.get("ckpt_path")
    return bool(ckpt_path) and run_dir.resolve() in Path(str(ckpt_path)).expanduser().resolve().parents


def refusal(kind: str, folder: Path, key: str) -> str:
    return (
        f"{key}={folder} already holds a {kind}; to continue it use resume={folder}, to keep it and start anew "
        f"pick a new folder (or leave {key} out), to replace it delete it first (rm -r {folder})."
    )


class OneRunPerFolder(Callback):
    """Refuse, in one sentence and with exit code 2, a run or sweep into a folder that holds another one.

    `resume` is the sweep folder a `resume=<sweep dir>` continues (set by `sweep_resume.sweep_arguments`).
    """

    def __init__(self, resume: str | None = None) -> None:
        self.resume = Path(resume).resolve() if resume else None

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        if any(os.environ.get(name, "0") != "0" for name in RANK_VARIABLES):  # joins the run rank 0 starts there
            return
        run_dir = Path(str(config.hydra.run.dir))
        if holds_run(run_dir) and not continues_run(config, run_dir):
            _refuse(refusal("run", run_dir, "hydra.run.dir"))
        _check_writable(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if holds_sweep(sweep_dir) and sweep_dir.resolve() != self.resume:
            _refuse(refusal("sweep", sweep_dir, "hydra.sweep.dir"))
        _check_writable(sweep_dir)
        atomic_write_text(sweep_dir / SWEEP_RECORD, OmegaConf.to_yaml(config))


def _check_writable(folder: Path) -> None:
    """A read-only or full disk: one sentence here, not the traceback of Hydra's own mkdir a moment later."""
    from vae_lab.atomic_files import check_writable
    from vae_lab.errors import VaeLabError

    try:
        check_writable(folder)
    except VaeLabError as error:
        _refuse(str(error))


def _refuse(message: str) -> None:
    print_error(message)
    # SystemExit passes through Hydra's callback guard (which catches Exception) and sets the exit code.
    raise SystemExit(USAGE_EXIT)
