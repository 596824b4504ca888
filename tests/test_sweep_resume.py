"""A sweep SIGKILLed as a whole (the launcher and its workers) continues with `resume=<sweep dir>`: completed jobs
are kept, interrupted ones continue from their last.ckpt, the rest run. An Optuna search is not resumable.

Jobs are tiny (mlp_vae, 3 training batches per epoch, 1 validation batch) on real MNIST, on the CPU with 1 thread.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config
from tests.test_resume import fake_run, kill_when, scalars, start
from tests.test_sweeps import model_metrics, result
from vae_lab.errors import ConfigError
from vae_lab.resume import resumed_config

JOB = [
    "accelerator=cpu",
    "model=mlp_vae",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "++trainer.num_sanity_val_steps=0",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "data.eval_batch_size=100",
    "callbacks/each=[model_checkpoint,resume_state]",  # what a bit-identical resume needs, no images
    "+callbacks.pause._target_=tests.pause_mid_epoch.PauseMidEpoch",
]


def wait_until_gone(group: int) -> None:
    """Wait until no process of the process group is left (a surviving worker would write on into its job)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {group} outlived SIGKILL")


def events_files(job_dir: Path) -> int:
    return len(list((job_dir / "tensorboard").glob("events.out.tfevents.*")))


def val_steps(job_dir: Path) -> list[int]:
    return [step for step, _ in scalars(job_dir, "val/elbo")]


@pytest.mark.slow
def test_a_killed_joblib_sweep_resumes_each_job_once(tmp_path: Path, mnist_data_dir: Path) -> None:
    # Two jobs of the same setting (seed=7 twice): job 1 runs through untouched and is the uninterrupted
    # reference; job 0 holds still in the middle of epoch 1 (last.ckpt has epoch 0) when the sweep is killed.
    sweep_dir, marker, epochs = tmp_path / "sweep", tmp_path / "paused", 3
    first = start(
        "-m", "launcher=joblib", "seed=7,7", f"trainer.max_epochs={epochs}", *JOB, f"+callbacks.pause.marker={marker}",
        "+callbacks.pause.job=0", f"paths.data_dir={mnist_data_dir}", f"hydra.sweep.dir={sweep_dir}",
        new_session=True,
    )
    kill_when(first, marker, sweep_dir / "1" / "result.json", group=True)
    wait_until_gone(first.pid)
    assert not (sweep_dir / "0" / "result.json").exists() and (sweep_dir / "0" / "checkpoints" / "last.ckpt").is_file()
    kept = (sweep_dir / "1" / "result.json").read_text()

    # Other overrides are refused (the sweep is continued as it was).
    with pytest.raises(ConfigError, match=r"^resume=\S+ continues the sweep with its own overrides only .*seed=1"):
        resumed_config(compose_config("train", [f"resume={sweep_dir}", "seed=1"], tmp_path / "job"))

    resumed = start(f"resume={sweep_dir}")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert f"sweep {sweep_dir}: 2 jobs: 2 completed" in output

    assert (sweep_dir / "1" / "result.json").read_text() == kept  # completed before: kept, not trained again
    assert events_files(sweep_dir / "1") == 1
    assert events_files(sweep_dir / "0") == 2  # the killed start and the resume, in one curve
    for job in ("0", "1"):
        steps = val_steps(sweep_dir / job)
        assert len(steps) == epochs == len(set(steps)), (job, steps)
    # Resumed from its last.ckpt (a fresh start would have logged epoch 0 twice), job 0 ends exactly where the
    # uninterrupted job 1 ended.
    assert model_metrics(result(sweep_dir / "0")) == model_metrics(result(sweep_dir / "1"))


def test_an_optuna_search_or_a_resume_with_m_is_refused(tmp_path: Path) -> None:
    # Optuna's sweeper would add n_trials to a stored study and number its jobs from 0 again, into the folders of
    # the trials already there; no public API continues it, so a killed search is started again.
    search = tmp_path / "search"
    search.mkdir()
    (search / "multirun.yaml").write_text("hydra:\n  sweeper:\n    _target_: hydra_plugins.hydra_optuna_sweeper."
                                          "optuna_sweeper.OptunaSweeper\n  overrides: {hydra: [], task: []}\n")
    with pytest.raises(ConfigError, match=r"^resume=\S+ is an Optuna search, which cannot be resumed"):
        resumed_config(compose_config("train", [f"resume={search}"], tmp_path / "job"))
    run_dir = fake_run(tmp_path / "run", epochs_done=1, max_epochs=2)
    cfg = compose_config("train", [f"resume={run_dir}", "hydra.mode=MULTIRUN"], tmp_path / "job")
    with pytest.raises(ConfigError, match=r"^resume=\S+ continues a run or a sweep by itself; drop -m"):
        resumed_config(cfg)


def test_each_resumed_job_continues_what_its_folder_holds(tmp_path: Path) -> None:
    from vae_lab.resume import continue_job

    job_dir = fake_run(tmp_path / "3", epochs_done=1, max_epochs=2)  # .hydra/ and a last.ckpt after epoch 1 of 2
    for name in ("tensorboard/events.out.tfevents.1", "manifest.json", "train.log"):
        (job_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (job_dir / name).write_text("first start\n")
    cfg = OmegaConf.create({"paths": {"output_dir": str(job_dir)}, "ckpt_path": None, "trainer": {"max_epochs": 2}})
    assert continue_job(cfg) is None and cfg.ckpt_path == str(job_dir / "checkpoints" / "last.ckpt")
    # A last.ckpt that finished every epoch (killed before result.json) would train nothing and report nothing:
    # the job starts afresh instead, as one killed before its first checkpoint does, without the old files.
    cfg.ckpt_path, cfg.trainer.max_epochs = None, 1
    assert continue_job(cfg) is None and cfg.ckpt_path is None
    assert sorted(path.name for path in job_dir.iterdir()) == [".hydra", "train.log"]
    assert continue_job(cfg) is None and cfg.ckpt_path is None
    (job_dir / "result.json").write_text('{"status": "completed", "metrics": {"val/elbo": -90.5}}')
    assert continue_job(cfg) == {"val/elbo": -90.5}
