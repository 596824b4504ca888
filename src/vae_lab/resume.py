"""One run, one folder; `resume=<folder>` continues the run or sweep that lives there, in place.

`OneRunPerFolder` (a Hydra callback: it runs before Hydra creates the folder) refuses in one sentence an explicit
`hydra.run.dir` / `hydra.sweep.dir` that holds another run or sweep or cannot be written (default folder names carry
microseconds, so they never collide), and gives a new sweep its `multirun.yaml` at once (Hydra's basic sweeper
writes it later, Optuna's never). `resume=<run dir>` (or one of its checkpoints) becomes Hydra's own arguments
(`resume_arguments`): the run's saved `.hydra/config.yaml` as the primary config, the same run directory, and
`ckpt_path` at its `last.ckpt`, so `trainer.fit` restores weights, optimizer, loops and every callback's state.
Further overrides apply to this resume only; `trainer.max_epochs` defaults to what the run's latest start aimed for
(`manifest.json`), so a run extended by one resume and killed is finished by the next. `resume=<sweep dir>` starts
the sweep's recorded command line again (same jobs, job numbers, launcher and sweeper) into its folder; each job
continues what its folder holds (`continue_job`), an Optuna search its stored study (`continue_study`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vae_lab import CONFIG_DIR
from vae_lab.atomic_files import atomic_write_text, check_writable
from vae_lab.errors import USAGE_EXIT, VaeLabError, print_error
from vae_lab.sweep_outcome import CHECKPOINT, COMPLETED, RESULT_FILE, read_result

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)
SAVED_CONFIG = Path(".hydra") / "config.yaml"
SWEEP_RECORD = "multirun.yaml"  # the sweep's config and command line
RUN_MARKERS = (".hydra", RESULT_FILE, "manifest.json", "checkpoints", "train.log")
SWEEP_MARKERS = (SWEEP_RECORD, "optuna.db")
# A DDP process other than the global rank 0 (a rank Lightning started, another node, a SLURM task) shares its folder.
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")
RESUME_OVERRIDES = ("hydra.sweep.dir", "hydra.callbacks.one_run_per_folder.resume", "hydra.mode")  # a resume sets anew


def holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_MARKERS)


class OneRunPerFolder(Callback):
    """Refuse, with exit code 2, a run or sweep into a folder that holds another one or cannot be written.

    `resume` is the sweep folder a `resume=<sweep dir>` continues (set by `sweep_arguments`).
    """

    def __init__(self, resume: str | None = None) -> None:
        self.resume = Path(resume).resolve() if resume else None

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        if any(os.environ.get(name, "0") != "0" for name in RANK_VARIABLES):  # joins the run rank 0 starts there
            return
        run_dir, ckpt_path = Path(str(config.hydra.run.dir)), config.get("ckpt_path")
        continues = bool(ckpt_path) and run_dir.resolve() in Path(str(ckpt_path)).expanduser().resolve().parents
        claim(run_dir, "hydra.run.dir", "run", holds_run(run_dir) and not continues)

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        taken = any((sweep_dir / name).exists() for name in SWEEP_MARKERS) or (
            sweep_dir.is_dir() and any(holds_run(job) for job in sweep_dir.iterdir() if job.is_dir()))
        claim(sweep_dir, "hydra.sweep.dir", "sweep", taken and sweep_dir.resolve() != self.resume)
        atomic_write_text(sweep_dir / SWEEP_RECORD, OmegaConf.to_yaml(config))


def claim(folder: Path, key: str, kind: str, taken: bool) -> None:
    try:
        if taken:
            raise VaeLabError(
                f"{key}={folder} already holds a {kind}; to continue it use resume={folder}, to keep it and start "
                f"anew pick a new folder (or leave {key} out), to replace it delete it first (rm -r {folder}).")
        check_writable(folder)  # one sentence here, not the traceback of Hydra's own mkdir a moment later
    except VaeLabError as error:
        print_error(error)
        raise SystemExit(USAGE_EXIT) from error  # passes Hydra's callback guard (which catches Exception)


def find_run(target: str) -> tuple[Path, Path]:
    """(run directory, checkpoint) for `resume=<run dir>` or `resume=<run dir>/checkpoints/<file>.ckpt`."""
    path = Path(target).expanduser().resolve()
    if not path.exists():
        raise VaeLabError(
            f"resume={target} does not exist; use resume=<run dir> (e.g. outputs/<date>/<time>) or its last.ckpt."
        )
    run_dir, checkpoint = (path.parent.parent, path) if path.is_file() else (path, path / CHECKPOINT)
    if not (run_dir / SAVED_CONFIG).is_file():
        raise VaeLabError(
            f"resume={target} is not a vae_lab run: {run_dir / SAVED_CONFIG} is missing; "
            "use a folder that `python -m vae_lab.train` created."
        )
    if not checkpoint.is_file():
        callbacks = OmegaConf.load(run_dir / SAVED_CONFIG).get("callbacks") or {}
        raise VaeLabError(
            f"resume={target} has no {CHECKPOINT} yet (the run stopped before its first epoch ended); start it "
            "again instead." if {"model_checkpoint", "last_checkpoint"} & set(callbacks) else
            f"resume={target} cannot be resumed: the run kept no checkpoints (its config has no "
            "callbacks.last_checkpoint); start a new run, with the default callbacks to be able to resume it."
        )
    return run_dir, checkpoint


def override_value(argv: list[str], key: str) -> str | None:
    """The value the command line gives `key` (`key=v`, `+key=v` or `++key=v`; the last one wins), or None."""
    pattern = re.compile(rf"^\+{{0,2}}{re.escape(key)}=(.*)$")
    values = [match.group(1) for arg in argv if (match := pattern.match(arg))]
    return values[-1] if values else None


def planned_max_epochs(run_dir: Path) -> int | None:
    """`trainer.max_epochs` of the run's latest start: its last `manifest.json` entry, else the saved config."""
    from vae_lab.callbacks.manifest import MANIFEST

    manifest = run_dir / MANIFEST
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        return (record.get("resumes") or [record])[-1].get("config", {}).get("trainer", {}).get("max_epochs")
    return OmegaConf.load(run_dir / SAVED_CONFIG).get("trainer", {}).get("max_epochs")


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """Epochs the checkpoint has finished (Lightning saves `last.ckpt` after an epoch's validation)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress.get("processed", checkpoint.get("epoch", -1) + 1))


def epochs(count: int) -> str:
    return f"{count} epoch{'' if count == 1 else 's'}"


def read_intact(target: str, checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's dictionary; if it is corrupt, one sentence naming the newest intact one to resume from."""
    from vae_lab.checkpoints import CorruptCheckpoint, read_checkpoint_dict

    try:
        return read_checkpoint_dict(checkpoint, "resume")
    except CorruptCheckpoint as error:
        damaged = f"resume={target}: {checkpoint} is corrupt (truncated or damaged; torch.load cannot read it)"
        others = sorted(set(checkpoint.parent.glob("*.ckpt")) - {checkpoint}, key=lambda path: -path.stat().st_mtime)
        for other in others:
            try:
                done = epochs_done(read_checkpoint_dict(other, "resume"))
            except VaeLabError:
                continue
            raise VaeLabError(f"{damaged}; the newest intact checkpoint of the run is {other} ({epochs(done)} "
                              f"done): continue from it with resume={other}.") from error
        raise VaeLabError(f"{damaged}, and no intact checkpoint is left beside it; start the run anew.") from error


def resume_arguments(argv: list[str]) -> list[str]:
    """Replace `resume=X` in a command line by the Hydra arguments that continue run (or sweep) X in place; refuse,
    before anything is written, a resume with nothing left to train or one that changes the saved weights' size."""
    argument = next(arg for arg in argv if arg.startswith("resume="))
    target = argument.split("=", 1)[1]
    if len(target) > 1 and target[0] == target[-1] and target[0] in "'\"":  # quoted as for Hydra: resume='a b'
        target = target[1:-1]
    rest = [arg for arg in argv if arg != argument]
    if (Path(target).expanduser() / SWEEP_RECORD).is_file():
        return sweep_arguments(Path(target).expanduser().resolve(), target, rest)
    if {"-m", "--multirun"} & set(rest):
        raise VaeLabError(f"resume={target} continues one run, not a sweep (it has no {SWEEP_RECORD}); drop -m.")
    run_dir, checkpoint = find_run(target)
    requested = override_value(rest, "trainer.max_epochs")
    if requested is None:
        max_epochs = planned_max_epochs(run_dir)
        rest += [] if max_epochs is None else [f"trainer.max_epochs={max_epochs}"]
    else:
        max_epochs = int(requested) if re.fullmatch(r"-?\d+", requested.strip()) else None  # else: validation says
    saved = read_intact(target, checkpoint)
    latent_dim = override_value(rest, "model.latent_dim")
    saved_latent_dim = (saved.get("hyper_parameters") or {}).get("latent_dim")
    if latent_dim is not None and saved_latent_dim is not None and latent_dim.strip() != str(saved_latent_dim):
        raise VaeLabError(
            f"resume={target} cannot change model.latent_dim to {latent_dim}: the run's weights have latent_dim="
            f"{saved_latent_dim}; start a new run (without resume=) for another latent size."
        )
    done = epochs_done(saved)
    if isinstance(max_epochs, int) and 0 <= max_epochs <= done:
        raise VaeLabError(
            f"resume={target} has nothing to train: the run has finished {epochs(done)} and trainer.max_epochs is "
            f"{max_epochs}; add trainer.max_epochs=N with N > {done} to train it further."
        )
    return [f"--config-path={run_dir / SAVED_CONFIG.parent}", f"--config-name={SAVED_CONFIG.stem}", *rest,
            f'hydra.run.dir="{run_dir}"', "hydra.output_subdir=null",  # the first start's .hydra/ stays as written
            # The saved config has no hydra group: vae_lab's job logging (appending to train.log) is chosen again.
            f'hydra.searchpath=["file://{CONFIG_DIR}"]', "hydra/job_logging=vae_lab",
            "++warm_start_from=null",  # a warm start's source is used at the run's first start only (may be gone)
            f'++ckpt_path="{checkpoint}"']


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
    return ["--multirun", *kept, *hydra.overrides.task, f'hydra.sweep.dir="{sweep_dir}"',
            f'hydra.callbacks.one_run_per_folder.resume="{sweep_dir}"']


def continue_job(cfg: DictConfig) -> dict[str, float] | None:
    """A resumed sweep job's earlier start: its metrics if it completed (not trained again); else None, with
    `cfg.ckpt_path` at its `last.ckpt`, or its folder emptied for a fresh start. Files in a job folder are this very
    job's earlier start: OneRunPerFolder refuses a sweep folder that holds another sweep, but to `resume=`."""
    from vae_lab.checkpoints import read_checkpoint_dict

    job_dir = Path(cfg.paths.output_dir)
    checkpoint, max_epochs = job_dir / CHECKPOINT, cfg.trainer.get("max_epochs")
    result = read_result(job_dir)
    if result is not None and result.status == COMPLETED:
        log.info("job %s completed before this resume: its result is kept, not trained again", job_dir)
        return result.metrics
    try:  # A last.ckpt that finished every epoch (killed before result.json) would train nothing and report nothing.
        finished = isinstance(max_epochs, int) and 0 <= max_epochs <= epochs_done(read_checkpoint_dict(checkpoint))
    except VaeLabError:  # not a torch file: continuing it fails, and is recorded, as the job's own error
        finished = False
    if checkpoint.is_file() and not finished:
        log.info("job %s continues from %s", job_dir, checkpoint)
        cfg.ckpt_path = str(checkpoint)
        return None
    # A fresh start, without the killed start's TensorBoard events (their steps would be logged twice), images or
    # manifest. Hydra has just written .hydra/ and opened the job's log there.
    leftovers = [path for path in job_dir.iterdir() if path.name != ".hydra" and path.suffix != ".log"]
    for path in leftovers if (job_dir / ".hydra").is_dir() else []:  # only in the job's own Hydra folder
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return None


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
