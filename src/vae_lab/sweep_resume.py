"""Resume a killed sweep in place: `python -m vae_lab.train resume=multirun/<date>/<time>`.

`sweep_arguments` turns that argument back into the sweep's own command line, as the sweep folder's
`multirun.yaml` recorded it (the same jobs in the same order, hence the same job numbers, the same launcher and
sweeper), into the same `hydra.sweep.dir`. Each job then continues what its folder holds (`continue_job`): a job
whose `result.json` says completed returns its recorded metrics without training (so it is neither re-run nor
counted twice); one with `checkpoints/last.ckpt` continues it through Lightning's `ckpt_path`, which is what the
single-run `resume=` does (loops, callbacks' state, TensorBoard's purge of the interrupted epoch); one killed
before its first checkpoint starts afresh. An Optuna search keeps its study in the sweep folder
(conf/hparams_search/vae_optuna.yaml) and continues it (`continue_study`, used by vae_lab's Optuna sweeper).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from vae_lab.errors import VaeLabError
from vae_lab.resume import CHECKPOINT
from vae_lab.run_folder import SWEEP_RECORD
from vae_lab.sweep_outcome import COMPLETED, read_result

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)

# The Hydra overrides a resume adds: the folder, and telling OneRunPerFolder that this sweep continues its own.
RESUME_OVERRIDES = ("hydra.sweep.dir", "hydra.callbacks.one_run_per_folder.resume", "hydra.mode")


def is_sweep(folder: Path) -> bool:
    return (folder / SWEEP_RECORD).is_file()


def sweep_arguments(sweep_dir: Path, target: str, rest: list[str]) -> list[str]:
    """The command line that continues the sweep in `sweep_dir` (`target` as the user typed it, `rest` the others)."""
    extra = [arg for arg in rest if arg not in ("-m", "--multirun")]
    if extra:
        raise VaeLabError(
            f"resume={target} continues the sweep with the overrides it was started with, so it takes no others "
            f"({' '.join(extra)}); start a new sweep to change them."
        )
    hydra = OmegaConf.load(sweep_dir / SWEEP_RECORD).hydra
    if "optuna" in str(hydra.sweeper.get("_target_", "")).lower() and not hydra.sweeper.get("storage"):
        raise VaeLabError(
            f"resume={target} cannot continue this Optuna search: its study was kept in memory "
            "(hydra.sweeper.storage=null) and is gone; start the search again (hparams_search=vae_optuna keeps "
            "its study in the sweep folder)."
        )
    kept = [arg for arg in hydra.overrides.hydra if arg.split("=", 1)[0].lstrip("+~") not in RESUME_OVERRIDES]
    return [
        "--multirun",
        *kept,
        *hydra.overrides.task,
        f'hydra.sweep.dir="{sweep_dir}"',
        f'hydra.callbacks.one_run_per_folder.resume="{sweep_dir}"',
    ]


def continue_job(cfg: DictConfig) -> dict[str, float] | None:
    """For a sweep job, what an earlier start of it left: its metrics if it completed, else None, having pointed
    `cfg.ckpt_path` at its `last.ckpt` (or removed what a start with nothing to continue wrote).

    A `hydra.sweep.dir` that already holds a sweep is refused (OneRunPerFolder) unless `resume=` continues it, so
    a job folder with an earlier start's files holds this very job's earlier start.
    """
    job_dir = Path(cfg.paths.output_dir)
    result = read_result(job_dir)
    if result is not None and result.status == COMPLETED:
        log.info("job %s completed before this resume: its result is kept, not trained again", job_dir)
        return result.metrics
    if (job_dir / CHECKPOINT).is_file() and not trained_through(job_dir / CHECKPOINT, cfg.trainer.get("max_epochs")):
        log.info("job %s continues from %s", job_dir, job_dir / CHECKPOINT)
        cfg.ckpt_path = str(job_dir / CHECKPOINT)
        return None
    # Nothing to continue: a fresh start, without the killed start's TensorBoard events (their steps would be
    # logged twice), images or manifest. Hydra has just written .hydra/ and opened the job's log there.
    leftovers = [path for path in job_dir.iterdir() if path.name != ".hydra" and path.suffix != ".log"]
    for path in leftovers if (job_dir / ".hydra").is_dir() else []:  # only in the job's own Hydra folder
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return None


def trained_through(checkpoint: Path, max_epochs: int | None) -> bool:
    """True when `checkpoint` has finished all `max_epochs` (killed after its last save but before result.json):
    `trainer.fit` would train nothing and report no metrics, so the job is trained again, which ends the same."""
    from vae_lab.checkpoints import read_checkpoint_dict
    from vae_lab.resume import epochs_done

    try:
        return isinstance(max_epochs, int) and 0 <= max_epochs <= epochs_done(read_checkpoint_dict(checkpoint))
    except VaeLabError:  # not a torch file: continuing it fails, and is recorded, as the job's own error
        return False


def continue_study(storage: BaseStorage | str, study_name: str) -> int:
    """The number of finished trials of the stored study (0 for a new one); trials a kill left running are queued
    again, with their number and parameters, so the sweeper runs them first, in their own job folders."""
    import optuna
    from optuna.trial import TrialState

    storage = optuna.storages.get_storage(storage)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    trials = storage.get_all_trials(study_id, deepcopy=False)
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state(trial_id, TrialState.WAITING)  # Study.ask pops WAITING trials before new ones
    return sum(trial.state.is_finished() for trial in trials)
