"""A sweep SIGKILLed as a whole (the launcher and its workers) continues with `resume=<sweep dir>`: completed jobs
are kept, interrupted ones continue from their last.ckpt, the rest run; an Optuna search continues its stored study.

Jobs are tiny (mlp_vae, 3 training batches per epoch, 1 validation batch) on real MNIST, on the CPU with 1 thread.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from tests.test_resume import fake_run, kill_when, scalars, start
from tests.test_sweeps import model_metrics, read_csv, result
from vae_lab.errors import VaeLabError
from vae_lab.report import main as report_main
from vae_lab.resume import resume_arguments

JOB = [
    "accelerator=cpu",
    "model=mlp_vae",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "++trainer.num_sanity_val_steps=0",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "data.eval_batch_size=100",
    "callbacks/each=[model_checkpoint,rng_state,resumed_curves]",  # what a bit-identical resume needs, no images
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

    # `-m resume=<sweep>` is the same command; other overrides are refused (the sweep is continued as it was).
    assert resume_arguments(["-m", f"resume={sweep_dir}"]) == resume_arguments([f"resume={sweep_dir}"])
    with pytest.raises(VaeLabError, match=r"continues the sweep with the overrides it was started with, so it "
                                          r"takes no others \(seed=1\); start a new sweep to change them\.$"):
        resume_arguments([f"resume={sweep_dir}", "seed=1"])

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


def test_a_killed_optuna_search_continues_its_study_to_n_trials(tmp_path: Path, mnist_data_dir: Path) -> None:
    # Trial 0 completes; trial 1 is killed in the middle of its epoch 1; trial 2 never starts.
    sweep_dir, marker, n_trials = tmp_path / "search", tmp_path / "paused", 3
    first = start(
        "hparams_search=vae_optuna", f"hydra.sweeper.n_trials={n_trials}", "trainer.max_epochs=2", *JOB,
        f"+callbacks.pause.marker={marker}", "+callbacks.pause.job=1", "+callbacks.pause.batch=1",
        f"paths.data_dir={mnist_data_dir}", f"hydra.sweep.dir={sweep_dir}", new_session=True,
    )
    kill_when(first, marker, group=True)
    wait_until_gone(first.pid)
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    killed = optuna.load_study(study_name="vae_optuna", storage=storage).trials
    assert [trial.state for trial in killed] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    kept = (sweep_dir / "0" / "result.json").read_text()

    resumed = start(f"resume={sweep_dir}")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert f"sweep {sweep_dir}: {n_trials} jobs: {n_trials} completed" in output

    trials = optuna.load_study(study_name="vae_optuna", storage=storage).trials
    assert [(trial.number, trial.state) for trial in trials] == [
        (number, optuna.trial.TrialState.COMPLETE) for number in range(n_trials)]  # n_trials in all, not more
    assert trials[1].params == killed[1].params  # the killed trial ran again with its own values
    assert (sweep_dir / "0" / "result.json").read_text() == kept
    for trial in trials:  # trial N is job N: its values, its result
        job_dir = sweep_dir / str(trial.number)
        config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        assert trial.params == {key: OmegaConf.select(config, key) for key in trial.params}
        assert trial.value == pytest.approx(result(job_dir)["metrics"]["val/elbo"], abs=1e-6)
        assert len(val_steps(job_dir)) == 2 == len(set(val_steps(job_dir)))
    assert events_files(sweep_dir / "1") == 2  # continued from its last.ckpt

    # The search's outcome, as an uninterrupted one reports it (the Optuna preset's end-to-end checks).
    best = max(trials, key=lambda trial: trial.value)
    found = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert found.best_value == pytest.approx(best.value, abs=1e-6)  # main returned val/elbo, maximized
    assert dict(found.best_params) == best.params
    assert set(found.best_params) == {"model.latent_dim", "model.lr", "data.batch_size"}
    assert report_main([str(sweep_dir)]) == 0
    rows = read_csv(sweep_dir / "report.csv")
    assert rows[0]["job"] == str(best.number) and {"model.latent_dim", "model.lr", "data.batch_size"} <= set(rows[0])
    assert "Optuna's best trial (optimization_results.yaml)" in (sweep_dir / "report.md").read_text()


def test_a_run_is_resumed_without_m(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run", epochs_done=1, max_epochs=2)
    with pytest.raises(VaeLabError) as refused:
        resume_arguments(["-m", f"resume={run_dir}"])
    assert str(refused.value) == (
        f"resume={run_dir} continues one run, not a sweep (it has no multirun.yaml); drop -m."
    )


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
