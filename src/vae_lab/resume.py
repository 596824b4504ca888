"""One run per folder, and `resume=<folder>` to continue the run or sweep that lives there, in place (Hydra runs the
job in that folder: the `vae_lab.run_dir` resolver of conf/hydra/default.yaml)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vae_lab.atomic_files import atomic_write_text, check_writable
from vae_lab.errors import USAGE_EXIT, ConfigError, VaeLabError, print_error
from vae_lab.sweep_outcome import CHECKPOINT, COMPLETED, in_sweep, is_rank_zero, read_result

log = logging.getLogger(__name__)
SWEEP_RECORD = "multirun.yaml"  # the sweep's config and command line
RUN_MARKERS = (".hydra", "result.json", "manifest.json", "checkpoints", "train.log")


def holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_MARKERS)


class OneRunPerFolder(Callback):
    """Refuse (exit 2) a run or sweep into a folder that holds another one or cannot be written, and a launcher or
    sweeper whose plugin is missing. `resume`: the sweep folder a `resume=<sweep dir>` continues."""

    def __init__(self, resume: str | None = None) -> None:
        self.resume = Path(resume).resolve() if resume else None

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        if not is_rank_zero():
            return  # a DDP rank other than 0 (started by Lightning, another node, a SLURM task) joins rank 0's folder
        folder, ckpt_path = Path(str(config.hydra.run.dir)), config.get("ckpt_path")
        continues = bool(config.get("resume")) or bool(ckpt_path) and folder.resolve() in Path(
            str(ckpt_path)).expanduser().resolve().parents
        refuse(folder, "hydra.run.dir", "run", holds_run(folder) and not continues)

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        for plugin in (config.hydra.launcher, config.hydra.sweeper):  # the [sweeps] extra's plugins
            module = str(plugin.get("_target_", "")).rsplit(".", 2)[0]
            if module.startswith("hydra_plugins.") and importlib.util.find_spec(module) is None:
                print_error(f"{plugin._target_} is not installed; pip install 'vae_lab[sweeps]' to use it.")
                raise SystemExit(USAGE_EXIT)
        folder = Path(str(config.hydra.sweep.dir))
        taken = (folder / SWEEP_RECORD).exists() or (folder.is_dir() and any(
            holds_run(job) for job in folder.iterdir() if job.is_dir()))
        refuse(folder, "hydra.sweep.dir", "sweep", taken and folder.resolve() != self.resume)
        atomic_write_text(folder / SWEEP_RECORD, OmegaConf.to_yaml(config))  # Optuna's sweeper never writes it


def refuse(folder: Path, key: str, kind: str, taken: bool) -> None:
    try:
        if taken:
            raise ConfigError(
                f"{key}={folder} already holds a {kind}; to continue it use resume={folder}, to keep it and start "
                f"anew pick a new folder (or leave {key} out), to replace it delete it first (rm -r {folder}).")
        check_writable(folder)  # one sentence here, not the traceback of Hydra's own mkdir a moment later
    except VaeLabError as error:
        print_error(error)
        raise SystemExit(USAGE_EXIT) from error  # passes Hydra's callback guard (which catches Exception)


def resumed_config(cfg: DictConfig) -> DictConfig:
    """The job `resume=<run dir or checkpoint>` asks for: the run's saved config, the values this command sets, and
    `ckpt_path` at the checkpoint; `trainer.max_epochs` is the latest start's unless this command sets it.
    `resume=<sweep dir>` starts the sweep again instead (`resume_sweep`: this process ends)."""
    from vae_lab.callbacks.manifest import MANIFEST
    from vae_lab.checkpoints import nothing_to_train, read_checkpoint_dict

    if in_sweep():
        raise ConfigError(f"resume={cfg.resume} continues a run or a sweep by itself; drop -m.")
    target = Path(cfg.resume).expanduser().resolve()
    if (target / SWEEP_RECORD).is_file():
        resume_sweep(cfg, target)
    checkpoint = target if target.suffix == ".ckpt" else target / CHECKPOINT
    folder = checkpoint.parent.parent
    for path in (folder / ".hydra" / "config.yaml", checkpoint):  # not a run; no checkpoint yet
        if not path.is_file():
            raise ConfigError(f"resume={cfg.resume} has nothing to continue ({path} is missing); give a folder that "
                              "`python -m vae_lab.train` created and that has a checkpoint, or start a new run.")
    saved = OmegaConf.load(folder / ".hydra" / "config.yaml")
    manifest = folder / MANIFEST
    if manifest.is_file():  # a run extended by one resume and killed is finished by the next
        record = json.loads(manifest.read_text())
        saved.trainer.max_epochs = (record.get("resumes") or [record])[-1]["config"]["trainer"]["max_epochs"]
    choices = HydraConfig.get().runtime.choices
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in choices:
            raise ConfigError(f"resume={cfg.resume} keeps the run's own {key}; drop {override}, or start a new run.")
        if key != "resume":  # the value as this command composed it
            OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False, force_add=True)
    saved.ckpt_path, saved.warm_start_from = str(checkpoint), None  # a warm start's source may be gone by now
    # Refused here, before train() could record a failure into the run's result.json.
    if why := nothing_to_train(read_checkpoint_dict(checkpoint, "resume"), saved.trainer.get("max_epochs")):
        raise ConfigError(f"resume={cfg.resume} {why}")
    return saved


def resume_sweep(cfg: DictConfig, folder: Path) -> None:
    """`resume=<sweep dir>`: run the sweep's recorded command line again, into its folder (this process ends)."""
    hydra = OmegaConf.load(folder / SWEEP_RECORD).hydra
    if "optuna" in str(hydra.sweeper.get("_target_", "")).lower():
        raise ConfigError(f"resume={cfg.resume} is an Optuna search, which cannot be resumed (its sweeper would number "
                          "new trials from 0, into the old trials' folders); start the search again.")
    extra = [arg for arg in HydraConfig.get().overrides.task if not arg.startswith("resume=")]
    if extra:
        raise ConfigError(f"resume={cfg.resume} continues the sweep with its own overrides only (not "
                          f"{' '.join(extra)}); start a new sweep to change them.")
    renewed = ("hydra.sweep.dir", "hydra.callbacks.one_run_per_folder.resume", "hydra.mode")
    kept = [arg for arg in hydra.overrides.hydra if arg.split("=", 1)[0].lstrip("+~") not in renewed]
    os.execv(sys.executable, [sys.executable, "-m", "vae_lab.train", "--multirun", *kept, *hydra.overrides.task,
                              f'hydra.sweep.dir="{folder}"', f'hydra.callbacks.one_run_per_folder.resume="{folder}"'])


def continue_job(cfg: DictConfig) -> dict[str, float] | None:
    """A resumed sweep job's earlier start: its metrics if it completed (not trained again); else None, with
    `cfg.ckpt_path` at its `last.ckpt` if it has epochs left, or its folder emptied for a fresh start."""
    from vae_lab.checkpoints import nothing_to_train, read_checkpoint_dict

    job_dir = Path(cfg.paths.output_dir)
    checkpoint, result = job_dir / CHECKPOINT, read_result(job_dir)
    if result is not None and result.status == COMPLETED:
        log.info("job %s completed before this resume: its result is kept, not trained again", job_dir)
        return result.metrics
    try:  # A last.ckpt that finished every epoch (killed before result.json) would train nothing and report nothing.
        left = checkpoint.is_file() and not nothing_to_train(read_checkpoint_dict(checkpoint),
                                                             cfg.trainer.get("max_epochs"))
    except VaeLabError:  # not a torch file: continuing it fails, and is recorded, as the job's own error
        left = True
    if left:
        log.info("job %s continues from %s", job_dir, checkpoint)
        cfg.ckpt_path = str(checkpoint)
        return None
    # A fresh start, without the killed start's events, images or manifest; Hydra has just written .hydra/ and the log.
    for path in job_dir.iterdir() if (job_dir / ".hydra").is_dir() else []:
        if path.name != ".hydra" and path.suffix != ".log":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return None
