"""The report over seeds, several folders and rate against distortion.

One real 3-seed x 2-latent-size sweep on MNIST (tiny jobs) checks the aggregated table against the jobs' own
`result.json`; the other checks build job folders by hand (Hydra's `.hydra/` files and a `result.json`), as a
run writes them, to cover cases a real run would take minutes to produce.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from tests.test_sweeps import TINY as SWEEP_TINY
from tests.test_sweeps import read_csv, run_cli
from vae_lab.report import find_jobs, lower_is_better
from vae_lab.report import main as report_main
from vae_lab.sweep_outcome import JobResult, write_result

TINY = [*(override for override in SWEEP_TINY if not override.startswith("callbacks/each=")), "callbacks=none"]
METRICS = ("val/elbo", "train/elbo", "val/kl", "val/recon")


def fake_job(folder: Path, overrides: list[str], metrics: dict[str, float] | None, status: str = "completed",
             config: dict | None = None, num: int | str = "???") -> Path:
    """A job folder as Hydra and `train` leave it: `.hydra/{overrides,config,hydra}.yaml` and `result.json`."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create(config or {}), folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": num}}}), folder / ".hydra" / "hydra.yaml")
    if metrics is not None:
        write_result(folder, JobResult(status, metrics, None if status == "completed" else "it diverged"))
    return folder


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """Every figure the report saves, by file name, kept open to look at what was drawn."""
    saved: dict[str, Figure] = {}

    def save_figure(figure: Figure, path: Path) -> None:
        saved[Path(path).name] = figure
        Path(path).write_bytes(b"\x89PNG")

    monkeypatch.setattr("vae_lab.report.save_figure", save_figure)
    return saved


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> Path:
    """`-m seed=0,1,2 model.latent_dim=2,4`: six tiny jobs; the sweep folder."""
    sweep_dir = tmp_path_factory.mktemp("seed_sweep") / "sweep"
    done = run_cli("vae_lab.train", ["-m", "seed=0,1,2", "model.latent_dim=2,4", *TINY,
                                     f"paths.data_dir={mnist_data_dir}", f"hydra.sweep.dir={sweep_dir}"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"sweep {sweep_dir}: 6 jobs: 6 completed" in done.stdout
    return sweep_dir


def check_seed_report(sweep: Path) -> tuple[list[dict[str, str]], list[tuple[Any, dict]], str]:
    """report.csv, jobs.csv and report.md of a sweep of 2 settings of model.latent_dim x seeds 0, 1, 2 agree with
    its jobs' result.json: mean, sd and n per setting, the jobs, the summary and best lines. Returns (report.csv's
    rows, each job's (config, result), report.md's text)."""
    results = [(OmegaConf.load(job / ".hydra" / "config.yaml"), json.loads((job / "result.json").read_text()))
               for job in sorted(sweep.glob("[0-9]"))]
    rows = read_csv(sweep / "report.csv")
    assert len(rows) == 2 and "seed" not in rows[0]
    for row in rows:
        latent_dim = int(row["model.latent_dim"])
        mine = [result["metrics"] for config, result in results if config.model.latent_dim == latent_dim]
        assert row["jobs"] == "3" and row["seeds"].split() == ["0", "1", "2"]
        for metric in METRICS:
            values = [metrics[metric] for metrics in mine]
            assert float(row[f"{metric}_mean"]) == pytest.approx(statistics.fmean(values), abs=1e-9)
            assert float(row[f"{metric}_sd"]) == pytest.approx(statistics.stdev(values), abs=1e-9)
            assert row[f"{metric}_n"] == "3"
    jobs = read_csv(sweep / "jobs.csv")
    assert len(jobs) == 6 and {job["seed"] for job in jobs} == {"0", "1", "2"}
    text = (sweep / "report.md").read_text()
    assert "6 jobs: 6 completed. 2 settings of `model.latent_dim`, each over seeds 0, 1, 2" in text
    best = rows[0]
    assert (f"Best: model.latent_dim={best['model.latent_dim']}, `val/elbo` = {float(best['val/elbo_mean']):.5g} ± "
            f"{float(best['val/elbo_sd']):.3g} (n = 3).") in text
    assert "## Jobs" in text
    return rows, results, text


def test_seeds_written_by_hand_report_mean_sd_and_n_per_setting_and_draw_sd_bars(tmp_path: Path, figures: dict) -> None:
    # The seed sweep below (slow: it trains six jobs), with each job's result.json and one-epoch CSV log by hand.
    sweep = tmp_path / "sweep"
    for num, (seed, latent_dim) in enumerate((seed, latent_dim) for seed in (0, 1, 2) for latent_dim in (2, 4)):
        metrics = {"val/elbo": -150.0 + 5 * latent_dim - seed**2, "train/elbo": -155.0 + 4 * latent_dim - seed,
                   "val/kl": 2.0 * latent_dim + 0.5 * seed, "val/recon": -140.0 + 3 * latent_dim - 2 * seed}
        job = fake_job(sweep / str(num), [f"seed={seed}", f"model.latent_dim={latent_dim}"], metrics, num=num,
                       config={"seed": seed, "model": {"latent_dim": latent_dim}})
        (job / "csv" / "version_0").mkdir(parents=True)
        (job / "csv" / "version_0" / "metrics.csv").write_text(f"epoch,step,val/elbo\n0,1,{metrics['val/elbo']}\n")
    assert report_main([str(sweep)]) == 0
    rows, results, text = check_seed_report(sweep)
    assert [row["model.latent_dim"] for row in rows] == ["4", "2"]  # best mean first
    assert "| model.latent_dim | n | val/elbo | train/elbo | val/kl | val/recon |" in text

    final, curves = figures["report.png"].axes
    (bars,) = [container for container in final.containers if isinstance(container, ErrorbarContainer)]
    line, _, (segments,) = bars.lines
    assert list(line.get_xdata()) == [2.0, 4.0]
    by_latent = {row["model.latent_dim"]: row for row in rows}
    for x, y, segment in zip(line.get_xdata(), line.get_ydata(), segments.get_segments(), strict=True):
        row = by_latent[str(int(x))]
        assert y == pytest.approx(float(row["val/elbo_mean"]))
        assert segment[1][1] - segment[0][1] == pytest.approx(2 * float(row["val/elbo_sd"]))  # mean ± 1 sd
    assert len(curves.get_lines()) == 2 and len(curves.collections) == 2  # a mean curve and a band per setting
    curve_means = sorted(float(y) for line in curves.get_lines() for y in line.get_ydata())
    assert curve_means == pytest.approx(sorted(float(row["val/elbo_mean"]) for row in rows), abs=1e-9)
    (plot,) = figures["rate_distortion.png"].axes  # one point per job, at (-val/recon, val/kl)
    drawn = sorted(tuple(point) for collection in plot.collections for point in collection.get_offsets())
    expected = sorted((-result["metrics"]["val/recon"], result["metrics"]["val/kl"]) for _, result in results)
    assert [value for point in drawn for value in point] == pytest.approx(
        [value for point in expected for value in point])


@pytest.mark.slow  # reads the real seed sweep: make test-all
def test_a_seed_sweep_reports_mean_sd_and_n_per_setting_from_the_jobs_results(seed_sweep: Path) -> None:
    assert report_main([str(seed_sweep)]) == 0
    rows, _, text = check_seed_report(seed_sweep)
    assert {row["model.latent_dim"] for row in rows} == {"2", "4"}
    assert all(float(row["val/elbo_sd"]) > 0 for row in rows)  # the seeds did give different models
    assert float(rows[0]["val/elbo_mean"]) >= float(rows[1]["val/elbo_mean"])  # best (highest) mean first
    header = ("| model.latent_dim | n | val/elbo | perf/fit_s | train/elbo | train/loss | val/bpd | val/kl | val/loss "
              "| val/recon |")
    assert header in text
    for name in ("report.png", "rate_distortion.png"):
        image = (seed_sweep / name).read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 10_000


@pytest.mark.slow  # reads the real seed sweep: make test-all
def test_the_seed_figure_draws_sd_error_bars_and_bands(seed_sweep: Path, tmp_path: Path, figures: dict) -> None:
    assert report_main([str(seed_sweep), "--out", str(tmp_path)]) == 0
    rows = {row["model.latent_dim"]: row for row in read_csv(tmp_path / "report.csv")}
    final, curves = figures["report.png"].axes
    (bars,) = [container for container in final.containers if isinstance(container, ErrorbarContainer)]
    line, _, (segments,) = bars.lines
    assert list(line.get_xdata()) == [2.0, 4.0]
    for x, y, segment in zip(line.get_xdata(), line.get_ydata(), segments.get_segments(), strict=True):
        row = rows[str(int(x))]
        assert y == pytest.approx(float(row["val/elbo_mean"]))
        assert segment[1][1] - segment[0][1] == pytest.approx(2 * float(row["val/elbo_sd"]))  # mean ± 1 sd
    assert len(curves.get_lines()) == 2 and len(curves.collections) == 2  # a mean curve and a band per setting
    curve_means = sorted(float(y) for line in curves.get_lines() for y in line.get_ydata())  # 1 epoch: 1 point each
    assert curve_means == pytest.approx(sorted(float(row["val/elbo_mean"]) for row in rows.values()), abs=1e-4)
    # rate against distortion: one point per job, at (-val/recon, val/kl) from its result.json
    (plot,) = figures["rate_distortion.png"].axes
    drawn = sorted(tuple(point) for collection in plot.collections for point in collection.get_offsets())
    expected = []
    for job in seed_sweep.glob("[0-9]"):
        metrics = json.loads((job / "result.json").read_text())["metrics"]
        expected.append((-metrics["val/recon"], metrics["val/kl"]))
    assert [value for point in drawn for value in point] == pytest.approx(
        [value for point in sorted(expected) for value in point])


def test_several_run_folders_make_one_report_with_values_from_each_runs_config(tmp_path: Path) -> None:
    # `python -m vae_lab.report outputs/2026-12-01/*`: single runs, started with different options.
    day = tmp_path / "outputs" / "2026-12-01"
    fake_job(day / "12-00-00", [], {"val/elbo": -150.0, "val/kl": 20.0}, config={"model": {"latent_dim": 50}})
    fake_job(day / "12-05-00", ["model.latent_dim=2"], {"val/elbo": -160.0, "val/kl": 5.0},
             config={"model": {"latent_dim": 2}})
    (day / "report.md").write_text("the user's own notes")
    assert report_main([str(day / "12-00-00"), str(day / "12-05-00")]) == 2  # several folders need --out
    assert (day / "report.md").read_text() == "the user's own notes" and not (day / "report.csv").exists()
    out = tmp_path / "compared"
    assert report_main([str(day / "12-00-00"), str(day / "12-05-00"), "--out", str(out)]) == 0
    rows = read_csv(out / "report.csv")
    assert [(row["job"], row["model.latent_dim"], row["val/elbo"]) for row in rows] == [
        ("12-00-00", "50", "-150.0"), ("12-05-00", "2", "-160.0")]
    heading = (out / "report.md").read_text().splitlines()[0]
    assert str(day / "12-00-00") in heading and str(day / "12-05-00") in heading and str(out) not in heading


def test_several_sweeps_group_seeds_across_them(tmp_path: Path) -> None:
    day = tmp_path / "multirun" / "2026-12-01"
    for sweep, seed in (("07-00-00-000001", 0), ("08-00-00-000002", 1)):
        for num, beta in enumerate((0.5, 1.0)):
            fake_job(day / sweep / str(num), [f"seed={seed}", f"model.beta={beta}"],
                     {"val/elbo": -100 * beta - seed, "val/kl": 10 / beta + seed, "val/recon": -90.0 - seed}, num=num)
    assert [job.name for job in find_jobs(day)] == ["07-00-00-000001/0", "07-00-00-000001/1", "08-00-00-000002/0",
                                                    "08-00-00-000002/1"]
    assert report_main([str(day), "--metric", "val/kl"]) == 0
    rows = read_csv(day / "report.csv")
    assert [row["model.beta"] for row in rows] == ["1.0", "0.5"]  # lower KL first
    assert [float(row["val/kl_mean"]) for row in rows] == [10.5, 20.5]
    assert [float(row["val/kl_sd"]) for row in rows] == pytest.approx([math.sqrt(0.5)] * 2)
    assert "Sorted by mean `val/kl`, best first (lower is better)." in (day / "report.md").read_text()
    assert (day / "rate_distortion.png").is_file()  # model.beta is swept


def test_a_failed_seed_counts_in_jobs_but_not_in_n(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fake_job(sweep / "0", ["seed=0", "model.latent_dim=2"], {"val/elbo": -100.0}, num=0)
    fake_job(sweep / "1", ["seed=1", "model.latent_dim=2"], {"val/elbo": -104.0}, num=1)
    fake_job(sweep / "2", ["seed=2", "model.latent_dim=2"], {"val/elbo": math.nan}, num=2)  # diverged, completed
    fake_job(sweep / "3", ["seed=3", "model.latent_dim=2"], {}, status="failed", num=3)
    fake_job(sweep / "4", ["seed=0", "model.latent_dim=8"], {"val/elbo": -90.0}, num=4)
    fake_job(sweep / "5", ["seed=1", "model.latent_dim=8"], None, num=5)  # unfinished: no result.json
    assert report_main([str(sweep)]) == 0
    rows = read_csv(sweep / "report.csv")
    assert [(row["model.latent_dim"], row["jobs"], row["val/elbo_n"]) for row in rows] == [("8", "2", "1"),
                                                                                          ("2", "4", "2")]
    assert rows[0]["val/elbo_sd"] == "" and float(rows[1]["val/elbo_sd"]) == pytest.approx(math.sqrt(8))
    text = (sweep / "report.md").read_text()
    assert "| 8 | 1 | -90 |" in text and "| 2 | 3 | -102 ± 2.83 (n=2) |" in text
    assert {row["status"] for row in read_csv(sweep / "jobs.csv")} == {"completed", "failed", "unfinished"}


def test_only_a_seed_sweep_is_one_group(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for seed in range(3):
        fake_job(sweep / str(seed), [f"seed={seed}"], {"val/elbo": -100.0 - seed}, num=seed)
    assert report_main([str(sweep)]) == 0
    (row,) = read_csv(sweep / "report.csv")
    assert (float(row["val/elbo_mean"]), float(row["val/elbo_sd"]), row["val/elbo_n"]) == (-101.0, 1.0, "3")
    assert "Best: all jobs, `val/elbo` = -101 ± 1 (n = 3)." in (sweep / "report.md").read_text()
    assert not (sweep / "rate_distortion.png").exists()  # neither beta nor latent size swept


def test_rate_distortion_uses_test_metrics_when_every_job_has_them(tmp_path: Path, figures: dict) -> None:
    sweep = tmp_path / "sweep"
    for num, latent in enumerate((2, 16)):
        fake_job(sweep / str(num), [f"model.latent_dim={latent}"], {"val/elbo": -1.0, "val/kl": 1.0, "val/recon": -2.0,
                 "test/kl": float(latent), "test/recon": -100.0 + latent}, num=num)
    assert report_main([str(sweep)]) == 0
    (plot,) = figures["rate_distortion.png"].axes
    drawn = sorted(tuple(point) for collection in plot.collections for point in collection.get_offsets())
    assert drawn == [(84.0, 16.0), (98.0, 2.0)]
    assert plot.get_xlabel().startswith("distortion D = −test/recon")
    assert "rate = `test/kl`, distortion = −`test/recon`" in (sweep / "report.md").read_text()


@pytest.mark.parametrize(
    ("metric", "lower"),
    [("val/elbo", False), ("test/iwae", False), ("val/recon", False), ("test/active_units", False),
     ("val/kl", True), ("train/loss", True), ("test/nll", True), ("test/iwae_se", True), ("perf/val_s", True),
     ("perf/warmup_s", True), ("perf/train_images_per_s", False), ("perf/train_images_per_cpu_s", False)],
)
def test_which_metrics_rank_lower_first(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


def test_evaluate_metrics_beside_a_jobs_checkpoints_join_its_row_and_columns_pick_what_is_shown(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # `python -m vae_lab.evaluate ckpt_path=<job>/checkpoints/last.ckpt` writes <job>/checkpoints/metrics.json.
    sweep = tmp_path / "sweep"
    first = fake_job(sweep / "0", ["model.latent_dim=2"], {"val/elbo": -150.0, "val/kl": 5.0})
    fake_job(sweep / "1", ["model.latent_dim=4"], {"val/elbo": -140.0, "val/kl": 9.0})
    (first / "checkpoints").mkdir()
    (first / "checkpoints" / "metrics.json").write_text(json.dumps(
        {"test/iwae": -145.5, "test/active_units": 2, "iwae_samples": 5000, "ckpt_path": "x", "test/k": {"1": 0}}))
    assert report_main([str(sweep), "--columns", "test/iwae,test/active_units"]) == 0
    rows = read_csv(sweep / "report.csv")
    assert [(row["job"], row["test/iwae"], row["test/active_units"]) for row in rows] == [
        ("1", "", ""), ("0", "-145.5", "2")]
    assert "val/kl" not in rows[0] and "iwae_samples" not in rows[0]
    assert report_main([str(sweep), "--columns", "test/iwea"]) == 1
    assert "--columns test/iwea: no job recorded it; use names from test/active_units, test/iwae, val/elbo, " \
           "val/kl." in capsys.readouterr().err


def test_a_report_into_an_unwritable_folder_is_one_sentence_before_any_job_is_read(tmp_path: Path, capsys) -> None:
    fake_job(tmp_path / "sweep" / "0", ["model.latent_dim=2"], {"val/elbo": -100.0})
    (tmp_path / "blocked").write_text("a file where the report folder should be")
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "blocked" / "report")]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot write {tmp_path / 'blocked' / 'report'} (Not a directory); free some space or make it "
        "writable, or choose another folder (output_dir=... for evaluate and sample, hydra.run.dir=... for a run).\n"
    )


def test_without_tensorboard_the_curves_come_from_the_csv_log(tmp_path: Path, figures: dict) -> None:
    # `logger=csv`: Lightning's csv/version_N/metrics.csv, a resumed run adding the next version.
    job = fake_job(tmp_path / "run", [], {"val/elbo": -90.0})
    for version, rows in ((0, "0,9,-120.0\n1,19,-100.0\n"), (1, "2,29,-90.0\n")):
        (job / "csv" / f"version_{version}").mkdir(parents=True)
        (job / "csv" / f"version_{version}" / "metrics.csv").write_text("epoch,step,val/elbo\n" + rows)
    assert report_main([str(job)]) == 0
    (line,) = figures["report.png"].axes[-1].get_lines()
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([1, 2, 3], [-120.0, -100.0, -90.0])
