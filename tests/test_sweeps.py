"""Sweeps end to end through the real command line: multirun, the joblib and Optuna presets, a failing job, the report.

Every sweep trains tiny jobs (2 batches of 100, 1 validation batch) on real MNIST; the checks compare what the
report and the sweep summary say with what each job wrote itself (its TensorBoard events, its config).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from tests.conftest import compose_config
from vae_lab.report import main as report_main

TINY = [
    "accelerator=cpu",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.num_sanity_val_steps=0",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "data.eval_batch_size=100",
    "callbacks/each=[model_checkpoint,hparams]",  # checkpoints and hparams, without the image callbacks' cost
]
SWEEP_DIR_PATTERN = re.compile(r"multirun/\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}-\d{6}$")


def run_cli(module: str, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def events(job_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(job_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def final_scalar(job_dir: Path, tag: str) -> float:
    return events(job_dir).Scalars(tag)[-1].value


def result(job_dir: Path) -> dict:
    return json.loads((job_dir / "result.json").read_text())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def model_metrics(result: dict) -> dict[str, float]:
    """A result's metrics without the wall times (`perf/fit_s`), which differ from run to run."""
    return {name: value for name, value in result["metrics"].items() if not name.startswith("perf/")}


def assert_complete(job_dir: Path) -> None:
    assert (job_dir / ".hydra" / "config.yaml").is_file()
    assert (job_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((job_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert result(job_dir)["status"] == "completed"


@pytest.fixture(scope="module")
def latent_sweep(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> Path:
    """`-m model.latent_dim=2,4` with the in-process (basic) launcher; the sweep folder."""
    sweep_dir = tmp_path_factory.mktemp("latent_sweep") / "sweep"
    done = run_cli(
        "vae_lab.train",
        ["-m", "model.latent_dim=2,4", *TINY, f"paths.data_dir={mnist_data_dir}", f"hydra.sweep.dir={sweep_dir}"],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"sweep {sweep_dir}: 2 jobs: 2 completed" in done.stdout
    # The sweep ends with its closing block: counts and best job, its metrics, the report and TensorBoard commands.
    lines = done.stdout.rstrip().splitlines()
    block = lines[max(i for i, line in enumerate(lines) if line.startswith(f"sweep {sweep_dir}: ")):]
    assert block[0].startswith(f"sweep {sweep_dir}: 2 jobs: 2 completed; best by val/elbo: job ")
    assert "val/elbo -" in block[1]
    assert block[-2:] == [f"  report: python -m vae_lab.report {sweep_dir}",
                          f"  view it: tensorboard --logdir {sweep_dir}"]
    return sweep_dir


@pytest.mark.slow  # reads the real sweep: make test-all
def test_multirun_writes_one_complete_job_dir_per_value(latent_sweep: Path) -> None:
    for job, latent_dim in ((0, 2), (1, 4)):
        job_dir = latent_sweep / str(job)
        assert_complete(job_dir)
        assert OmegaConf.load(job_dir / ".hydra" / "config.yaml").model.latent_dim == latent_dim
        assert result(job_dir)["metrics"]["val/elbo"] == pytest.approx(final_scalar(job_dir, "val/elbo"), abs=1e-4)


@pytest.mark.slow  # reads the real sweep: make test-all
def test_report_table_matches_each_jobs_own_events(latent_sweep: Path, tmp_path: Path) -> None:
    assert report_main([str(latent_sweep)]) == 0
    rows = read_csv(latent_sweep / "report.csv")
    assert len(rows) == 2 and {row["status"] for row in rows} == {"completed"}
    for row in rows:
        job_dir = latent_sweep / row["dir"]
        assert int(row["model.latent_dim"]) == OmegaConf.load(job_dir / ".hydra" / "config.yaml").model.latent_dim
        for tag in ("val/elbo", "val/kl", "val/recon", "train/elbo"):
            assert float(row[tag]) == pytest.approx(final_scalar(job_dir, tag), abs=1e-4)
    elbos = [float(row["val/elbo"]) for row in rows]
    assert elbos == sorted(elbos, reverse=True)  # best (highest) ELBO first
    table = (latent_sweep / "report.md").read_text()
    assert "2 jobs: 2 completed" in table and f"Best: job {rows[0]['job']} (model.latent_dim=" in table
    image = (latent_sweep / "report.png").read_bytes()
    assert image.startswith(b"\x89PNG") and len(image) > 10_000


@pytest.mark.slow  # reads the real sweep: make test-all
def test_hparams_carry_the_swept_value_under_the_same_keys_in_every_job(latent_sweep: Path) -> None:
    sessions = []
    for job in (0, 1):
        content = events(latent_sweep / str(job)).PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
        sessions.append(({key: value.WhichOneof("kind") for key, value in start.hparams.items()}, start, end))
    assert sessions[0][0] == sessions[1][0]  # same keys, same types
    assert [session[1].hparams["model.latent_dim"].number_value for session in sessions] == [2, 4]
    assert {"model.lr", "data.batch_size", "trainer.max_epochs"} <= set(sessions[0][0])
    assert not [key for key in sessions[0][0] if key.startswith(("paths.", "hydra."))]
    assert all(session[2].status == 1 for session in sessions)  # STATUS_SUCCESS


@pytest.mark.slow  # reads the real sweep: make test-all
def test_joblib_preset_runs_the_sweep_in_parallel_processes(
    latent_sweep: Path, tmp_path: Path, mnist_data_dir: Path
) -> None:
    # Started in an empty folder without hydra.sweep.dir: the default multirun/<date>/<time> layout is used.
    done = run_cli(
        "vae_lab.train",
        ["-m", "launcher=joblib", "model.latent_dim=2,4", *TINY, f"paths.data_dir={mnist_data_dir}"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr
    (sweep_dir,) = [path for path in (tmp_path / "multirun").glob("*/*") if path.is_dir()]
    assert SWEEP_DIR_PATTERN.search(sweep_dir.as_posix())
    spans, pids = [], set()
    for job in (0, 1):
        job_dir = sweep_dir / str(job)
        assert_complete(job_dir)
        assert OmegaConf.load(job_dir / ".hydra" / "config.yaml").threads == 1
        # The same seed and settings as the in-process sweep: the same models (up to the float rounding that
        # 1 thread instead of 2 may change).
        expected = result(latent_sweep / str(job))["metrics"]["val/elbo"]
        assert result(job_dir)["metrics"]["val/elbo"] == pytest.approx(expected, rel=1e-5)
        spans.append(((job_dir / ".hydra" / "config.yaml").stat().st_mtime, (job_dir / "result.json").stat().st_mtime))
        pids |= {path.name.split(".")[-2] for path in (job_dir / "tensorboard").glob("events.out.tfevents.*")}
    assert len(pids) == 2  # two worker processes
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # and they ran at the same time


@pytest.mark.slow  # reads the real sweep: make test-all
def test_a_failing_job_is_reported_and_leaves_the_others_untouched(
    latent_sweep: Path, tmp_path: Path, mnist_data_dir: Path
) -> None:
    # lr=1e6 passes config checks but diverges at run time (the NaN guard stops it); job 1 is latent_sweep's job 0.
    sweep_dir = tmp_path / "sweep"
    done = run_cli(
        "vae_lab.train",
        ["-m", "model.lr=1e6,1e-4", "model.latent_dim=2", *TINY, "callbacks/each=[model_checkpoint,nan_guard,hparams]",
         f"paths.data_dir={mnist_data_dir}", f"hydra.sweep.dir={sweep_dir}"],
    )
    assert done.returncode == 1
    assert "error: sweep job 0 failed, the others go on: " in done.stderr
    assert f"sweep {sweep_dir}: 2 jobs: 1 completed, 1 failed" in done.stdout
    assert "Traceback" not in done.stderr
    failed = result(sweep_dir / "0")
    assert failed["status"] == "failed" and "model.lr" in failed["error"]
    assert_complete(sweep_dir / "1")
    assert model_metrics(result(sweep_dir / "1")) == model_metrics(result(latent_sweep / "0"))
    assert report_main([str(sweep_dir)]) == 0
    rows = {row["job"]: row for row in read_csv(sweep_dir / "report.csv")}
    assert rows["0"]["status"] == "failed" and rows["0"]["error"] == failed["error"] and rows["0"]["val/elbo"] == ""
    assert rows["1"]["status"] == "completed"
    assert float(rows["1"]["val/elbo"]) == pytest.approx(final_scalar(sweep_dir / "1", "val/elbo"), abs=1e-4)


def test_report_refuses_a_folder_without_jobs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert report_main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} holds no sweep jobs")
    assert report_main([str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path / 'nowhere'} is not a folder; pass a run folder "
                                       "(outputs/<date>/<time>) or the folder a sweep printed at its end, like "
                                       "multirun/2026-01-31/12-00-00-123456.\n")


def test_two_sweeps_started_in_the_same_second_get_different_folders(tmp_path: Path) -> None:
    dirs = [compose_config("train", [], tmp_path / str(n)).hydra.sweep.dir for n in range(2)]
    assert all(SWEEP_DIR_PATTERN.search(path) for path in dirs)
    assert dirs[0] != dirs[1]  # microseconds in the time part, even when the seconds agree
    sweep = OmegaConf.to_container(compose_config("train", [], tmp_path).hydra.sweep, resolve=False)
    assert sweep["subdir"] == "${hydra.job.num}"  # multirun/<date>/<time>/<job number>


@pytest.mark.parametrize(
    ("preset", "launcher_target", "threads"),
    [
        ("launcher=joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", 1),
        ("launcher=submitit_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", 8),
    ],
)
def test_launcher_presets_compose(preset: str, launcher_target: str, threads: int, tmp_path: Path) -> None:
    cfg = compose_config("train", [preset], tmp_path)
    assert cfg.hydra.launcher._target_ == launcher_target
    assert cfg.threads == threads  # torch threads per job: 2 joblib jobs x 1 thread = 2 cores; SLURM: its CPUs


def test_optuna_preset_composes_a_maximizing_search(tmp_path: Path) -> None:
    cfg = compose_config("train", ["hparams_search=vae_optuna"], tmp_path)
    assert cfg.optimized_metric == "val/elbo" and cfg.hydra.mode == RunMode.MULTIRUN  # no -m needed
    assert cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"model.latent_dim", "model.lr", "data.batch_size"}
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


@pytest.mark.parametrize(("preset", "plugin"), [("launcher=joblib", "hydra_plugins.hydra_joblib_launcher"),
                                                ("hparams_search=vae_optuna", "hydra_plugins.hydra_optuna_sweeper")])
def test_a_sweep_plugin_that_is_not_installed_names_the_extra(preset, plugin, tmp_path, monkeypatch, capsys) -> None:
    # It used to read as a typo: "Could not find 'hydra/launcher/joblib'", with the presets that are installed.
    import importlib.util

    from vae_lab.resume import OneRunPerFolder

    cfg = compose_config("train", [preset, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == plugin else find_spec(name))
    with pytest.raises(SystemExit) as exited:
        OneRunPerFolder().on_multirun_start(cfg)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {plugin}.") and "vae_lab[sweeps]" in err and err.count("\n") == 1
    assert not (tmp_path / "sweep").exists()


def test_swept_keys_are_the_overrides_that_differ_between_jobs(tmp_path: Path) -> None:
    from vae_lab.report import SweepJob, parse_overrides, swept_keys

    def job(num: int, *overrides: str) -> SweepJob:
        return SweepJob(str(num), tmp_path / str(num), parse_overrides(list(overrides)), None, num)

    jobs = [job(0, "model.latent_dim=2", "++trainer.max_epochs=1", "data.batch_size=64"),
            job(1, "model.latent_dim=4", "++trainer.max_epochs=1", "data.batch_size=64")]
    assert swept_keys(jobs) == ["model.latent_dim"]
    assert swept_keys(jobs, searched=["data.batch_size", "model.lr"]) == ["model.latent_dim", "data.batch_size"]
    assert jobs[1].label(["model.latent_dim"]) == "job 1 (model.latent_dim=4)"
    assert jobs[0].status == "unfinished" and "no result.json" in jobs[0].error


def test_a_crashing_sweep_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path, monkeypatch, capsys) -> None:
    # Not a user's mistake (e.g. linalg.svd on diverged weights with the NaN guard off): it used to end the sweep
    # with a traceback and no summary.
    from types import SimpleNamespace

    from vae_lab import sweep_outcome

    monkeypatch.setattr(sweep_outcome, "in_sweep", lambda: True)
    monkeypatch.setattr(sweep_outcome.HydraConfig, "get", lambda: SimpleNamespace(job=SimpleNamespace(num=3)))

    def crash(cfg: object) -> dict[str, float]:
        raise RuntimeError("linalg.svd failed to converge")

    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}})
    assert sweep_outcome.run_recorded(crash, cfg) is None
    assert result(tmp_path)["status"] == "failed"
    assert result(tmp_path)["error"] == "RuntimeError: linalg.svd failed to converge"
    assert ("error: sweep job 3 failed, the others go on: RuntimeError: linalg.svd failed to converge"
            in capsys.readouterr().err)
    monkeypatch.setattr(sweep_outcome, "in_sweep", lambda: False)
    with pytest.raises(RuntimeError):  # a single run still fails loudly
        sweep_outcome.run_recorded(crash, cfg)


@pytest.mark.slow  # reads the real sweep: make test-all
def test_report_refuses_a_metric_no_job_recorded(latent_sweep: Path, tmp_path: Path, capsys) -> None:
    assert report_main([str(latent_sweep), "--out", str(tmp_path), "--metric", "val/elbow"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --metric val/elbow is not among the metrics the jobs recorded; use one of ")
    assert "val/elbo" in err and not list(tmp_path.iterdir())
    assert err.endswith("(ranked lower first: perf/fit_s, train/loss, val/bpd, val/kl, val/loss; the others higher "
                        "first).\n")
