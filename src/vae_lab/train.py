"""`python -m vae_lab.train [overrides]`: compose the config with Hydra (once) and fit the model with Lightning.

`train(cfg)` is a plain function (tests call it with a composed config); `main` is the `@hydra.main` wrapper: it
turns `resume=` into the job to run, records the outcome in `result.json`, turns a `VaeLabError` into one `error:`
line and its exit code, and prints the closing block.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vae_lab import CONFIG_DIR
from vae_lab.console import log_lightning_once, print_end_block, quiet_third_party_warnings
from vae_lab.errors import ConfigError, VaeLabError, check_seed, exit_on_user_error
from vae_lab.preflight import check_device, check_memory, set_threads
from vae_lab.resume import continue_job, resumed_config


def build(node: DictConfig, key: str, /, **kwargs: object) -> object:
    """`hydra.utils.instantiate(node)`; a constructor's refusal of its values becomes one `ConfigError` naming `key`."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, VaeLabError):
            raise cause from None
        if cause is None or isinstance(cause, (TypeError, ValueError, ImportError, MisconfigurationException)):
            raise ConfigError(f"{key}: {' '.join(str(cause or error).split())}") from error  # one line
        raise


def instantiate_group(group_cfg: DictConfig | None, group: str) -> list:
    """Every `_target_` entry of a group like `callbacks` or `logger` (a mapping of name -> cfg)."""
    return [build(entry, f"{group}.{name}") for name, entry in (group_cfg or {}).items()
            if entry and "_target_" in entry]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model described by `cfg`; return the final logged metrics (e.g. `val/elbo`) as floats."""
    import lightning as L

    seed, test_after_fit = cfg.seed, cfg.get("test_after_fit", "auto")
    check_seed("seed", seed)
    if test_after_fit not in ("auto", True, False):
        raise ConfigError(f"test_after_fit={test_after_fit!r} is not allowed; use auto, true or false.")
    set_threads(cfg.get("threads"))  # a parallel sweep job's share of the cores (conf/launcher/joblib.yaml)
    check_memory(cfg)  # a size the kernel would kill the process for
    check_device("trainer.accelerator", str(cfg.trainer.get("accelerator", "auto")))  # a sentence, not Lightning's
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = build(cfg.data, "data")
    model = build(cfg.model, "model")
    model.check_data(datamodule)  # the data's shape and values suit the model and its likelihood
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_group(cfg.get("logger"), "logger")
    # Without a ModelCheckpoint (callbacks=none) there are no checkpoints: Lightning would otherwise add its own, in a
    # folder and under a name that resume= does not know.
    checkpointing = {} if "enable_checkpointing" in cfg.trainer else {
        "enable_checkpointing": any(isinstance(callback, L.pytorch.callbacks.ModelCheckpoint) for callback in callbacks)
    }
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **checkpointing)
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("warm_start_from"):  # the weights only, as a new run
        from vae_lab.checkpoints import warm_start

        source = Path(cfg.warm_start_from).expanduser().resolve()
        if Path(cfg.paths.output_dir).resolve() in source.parents:
            raise ConfigError(
                f"warm_start_from={cfg.warm_start_from} is a checkpoint of this run's own folder, but a warm start "
                "is a new run from its weights (epoch 0, overwriting this folder's grids and checkpoints); to "
                "continue the run, use resume=<run dir> or ckpt_path=<its last.ckpt>."
            )
        warm_start(model, source)
    if ckpt_path:  # Lightning's meaning: the whole training state (weights, optimizer, loops, callbacks)
        from vae_lab.checkpoints import check_continues

        check_continues(model, Path(ckpt_path).expanduser(), cfg.trainer.get("max_epochs"))
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path or None)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics["perf/fit_s"] = time.perf_counter() - started  # wall time in fit (a resumed run: since it resumed)
    if test_after_fit is True or (test_after_fit == "auto" and cfg.data.get("val_size", 0) > 0):
        from vae_lab.evaluate import final_test

        metrics.update(final_test(trainer, datamodule, Path(cfg.paths.output_dir)))
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from vae_lab.sweep_outcome import in_sweep, is_rank_zero, run_recorded

    log_lightning_once()
    quiet_third_party_warnings()
    if cfg.get("resume"):  # refused before the run's own result.json could be overwritten
        cfg = exit_on_user_error(resumed_config, cfg)
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
    main()
