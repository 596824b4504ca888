"""`python -m vae_lab.train [overrides]`: compose the config with Hydra and fit the model with Lightning.

`train(cfg)` is a plain function (tests call it with a composed config); `main` is the thin Hydra wrapper
that turns a `VaeLabError` into one sentence on stderr and a non-zero exit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vae_lab import CONFIG_DIR
from vae_lab.config_checks import Seed, Threads, build
from vae_lab.console import log_lightning_once, print_end_block, quiet_third_party_warnings
from vae_lab.errors import ConfigError, VaeLabError, exit_on_user_error
from vae_lab.preflight import run, set_threads


@dataclass(frozen=True)
class TrainSettings:
    """The root keys of conf/train.yaml and what each accepts (model, data, callbacks... by their own classes)."""

    seed: Seed = 42
    threads: Threads = None


def instantiate_group(group_cfg: DictConfig | None, group: str | None = None) -> list:
    """Instantiate every `_target_` entry of a group like `callbacks` or `logger` (a mapping of name -> cfg)."""
    if not group_cfg:
        return []
    return [build(entry, group and f"{group}.{name}") for name, entry in group_cfg.items()
            if entry and "_target_" in entry]


def switched_off(callback: object, trainer_cfg: DictConfig) -> bool:
    """A progress bar or model summary from conf/callbacks/ that `trainer.enable_progress_bar=false` or
    `trainer.enable_model_summary=false` turns off: Lightning refuses the first and would still print the second."""
    from lightning.pytorch.callbacks import ModelSummary, ProgressBar

    return (isinstance(callback, ProgressBar) and trainer_cfg.get("enable_progress_bar") is False) or (
        isinstance(callback, ModelSummary) and trainer_cfg.get("enable_model_summary") is False)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model described by `cfg`; return the final logged metrics (e.g. `val/elbo`) as floats.

    The model, data and callbacks check their own values as they are built; the command line checked the rest of
    `cfg` before Hydra made the run's folder (from Python: `config_checks.check_config(cfg, TrainSettings)`).
    """
    if cfg.get("resume"):  # the command line turns resume=X into the run's own config; train() never sees it
        raise ConfigError(
            f"resume={cfg.resume} works on the command line only (python -m vae_lab.train resume=<run dir>); "
            "from Python, compose the run's .hydra/config.yaml and set ckpt_path to its checkpoints/last.ckpt."
        )

    import lightning as L

    set_threads(cfg.get("threads"))  # a parallel sweep job's share of the cores (conf/launcher/joblib.yaml)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data, "data")
    model = build(cfg.model, "model")
    model.check_data(datamodule)  # the images' shape and values suit the model and its likelihood
    callbacks = [callback for callback in instantiate_group(cfg.get("callbacks"), "callbacks")
                 if not switched_off(callback, cfg.trainer)]
    loggers = instantiate_group(cfg.get("logger"), "logger")
    # Without a model_checkpoint callback (callbacks=none, ~callbacks.model_checkpoint) there are no checkpoints:
    # Lightning would otherwise add its own, in a folder and under a name that resume= does not know.
    checkpointing = {} if "enable_checkpointing" in cfg.trainer else {
        "enable_checkpointing": any(isinstance(callback, L.pytorch.callbacks.ModelCheckpoint) for callback in callbacks)
    }
    # conf/callbacks/model_summary.yaml's summary (no FLOPs column of zeros) replaces the one Lightning would add; False
    # stops Lightning adding it, and saying so.
    summary = {"enable_model_summary": False} if any(
        isinstance(callback, L.pytorch.callbacks.ModelSummary) for callback in callbacks) else {}
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **checkpointing, **summary)
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("warm_start_from"):  # the weights only, as a new run
        from vae_lab.checkpoints import warm_start

        source = Path(cfg.warm_start_from).expanduser().resolve()
        if Path(cfg.paths.output_dir).resolve() in source.parents:
            raise VaeLabError(
                f"warm_start_from={cfg.warm_start_from} is a checkpoint of this run's own folder, but a warm start "
                "is a new run from its weights (epoch 0, overwriting this folder's grids and checkpoints); to "
                "continue the run, use resume=<run dir> or ckpt_path=<its last.ckpt>."
            )
        warm_start(model, source)
    if ckpt_path:  # Lightning's meaning: the whole training state (weights, optimizer, loops, callbacks)
        from vae_lab.checkpoints import check_continues

        check_continues(model, Path(ckpt_path).expanduser())
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path or None)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics["perf/fit_s"] = time.perf_counter() - started  # wall time in fit (a resumed run: since it resumed)
    if cfg.data.get("val_size", 0) > 0:  # the test set was held out from validation: score it once, now
        from vae_lab.evaluate import final_test

        metrics.update(final_test(trainer, datamodule, Path(cfg.paths.output_dir)))
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from vae_lab.resume import continue_job
    from vae_lab.sweep_outcome import in_sweep, is_rank_zero, run_recorded

    log_lightning_once()
    quiet_third_party_warnings()
    # A resumed sweep's job: its recorded metrics if it completed, else it continues its own last.ckpt.
    metrics = continue_job(cfg) if in_sweep() else None
    if metrics is None:  # run_recorded writes <run dir>/result.json; in a sweep, a failing job fails only itself.
        metrics = exit_on_user_error(lambda job_cfg: run_recorded(train, job_cfg), cfg)
    if metrics is not None and is_rank_zero():
        run_dir = Path(cfg.paths.output_dir)
        log = run_dir / "train.log"  # written by conf/hydra/job_logging/vae_lab.yaml, not by every job_logging
        print_end_block(f"run finished: {run_dir}", metrics, notes=[f"log: {log}"] if log.is_file() else [],
                        logdir=run_dir)
    metric_name = cfg.get("optimized_metric")
    return metrics.get(metric_name) if metrics and metric_name else None


if __name__ == "__main__":
    run(main, CONFIG_DIR, "train", TrainSettings)  # checks the command line before Hydra creates a run directory
