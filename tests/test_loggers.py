"""`logger=csv` and `logger=mlflow`, alone or next to TensorBoard: the same metrics under the same names, read back
through each format's own reader (the CSV file, MLflow's client on a real local store, TensorBoard's events)."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import compose_config
from vae_lab.train import instantiate_group, train

TAGS = ("train/elbo", "val/elbo", "val/kl", "val/recon")
NEEDS_MLFLOW = "logger=mlflow needs MLflow, the mlflow extra: pip install -e '.[mlflow]' (make setup installs it)"


def csv_series(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    (metrics_file,) = (run_dir / "csv").glob("version_*/metrics.csv")
    with metrics_file.open(newline="") as handle:
        return [(int(row["step"]), float(row[tag])) for row in csv.DictReader(handle) if row.get(tag)]


def tensorboard_series(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def assert_same_series(found: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [step for step, _ in found] == [step for step, _ in expected]
    assert [value for _, value in found] == pytest.approx([value for _, value in expected], rel=1e-6)


def test_a_list_of_loggers_composes_into_one_entry_each(tmp_path: Path) -> None:
    cfg = compose_config("train", ["logger=[tensorboard,csv]"], tmp_path / "run")
    assert list(cfg.logger) == ["tensorboard", "csv"]
    built = instantiate_group(cfg.logger, "logger")
    assert [type(logger) for logger in built] == [TensorBoardLogger, CSVLogger]
    assert Path(built[1].log_dir) == tmp_path / "run" / "csv" / "version_0"


def test_csv_alone_runs_the_default_callbacks_cleanly_and_records_the_final_metrics(make_train_cfg) -> None:
    # The image and hparams callbacks look for TensorBoard: without it they still write their files, and skip it.
    cfg = make_train_cfg("logger=csv", "model.latent_dim=2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(cfg)
    assert not [str(w.message) for w in caught if "tensorboard" in str(w.message).lower()]
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "tensorboard").exists()
    assert (run_dir / "image_at_epoch_0001.png").is_file() and (run_dir / "latent_manifold.png").is_file()
    for tag in TAGS:
        assert csv_series(run_dir, tag)[-1][1] == pytest.approx(metrics[tag], rel=1e-6)
    assert "latent_dim: 2" in (run_dir / "csv" / "version_0" / "hparams.yaml").read_text()


def test_tensorboard_csv_and_mlflow_record_the_same_metrics(make_train_cfg) -> None:
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    from mlflow.tracking import MlflowClient

    cfg = make_train_cfg("logger=[tensorboard,csv,mlflow]", "callbacks=none", "trainer.max_epochs=2")
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    # The default store: one SQLite file inside the run folder, read with MLflow's own client.
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("vae_lab").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["run_dir"] == str(run_dir)
    assert run.data.params["latent_dim"] == str(cfg.model.latent_dim) and run.data.params["lr"] == str(cfg.model.lr)
    for tag in TAGS:
        expected = tensorboard_series(run_dir, tag)
        assert len(expected) == 2  # one value per epoch
        assert_same_series(csv_series(run_dir, tag), expected)
        history = client.get_metric_history(run.info.run_id, tag)
        assert_same_series([(metric.step, metric.value) for metric in history], expected)
        assert expected[-1][1] == pytest.approx(metrics[tag], rel=1e-6)


def test_mlflow_stores_in_the_run_folder_unless_given_a_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "run"
    assert compose_config("train", ["logger=mlflow"], run_dir).logger.mlflow.tracking_uri == (
        f"sqlite:///{run_dir}/mlflow.db")
    given = f"sqlite:///{tmp_path}/given.db"
    assert compose_config("train", ["logger=mlflow", f"logger.mlflow.tracking_uri={given}"],
                          run_dir).logger.mlflow.tracking_uri == given
    shared = f"sqlite:///{tmp_path}/shared.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)  # MLflow's own variable
    cfg = compose_config("train", ["logger=mlflow"], run_dir)
    assert cfg.logger.mlflow.tracking_uri == shared
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    from mlflow.tracking import MlflowClient

    (logger,) = instantiate_group(cfg.logger, "logger")
    logger.log_metrics({"val/elbo": -123.5}, step=7)
    logger.finalize("success")
    client = MlflowClient(tracking_uri=shared)
    assert [(m.step, m.value) for m in client.get_metric_history(logger.run_id, "val/elbo")] == [(7, -123.5)]
    assert not (run_dir / "mlflow.db").exists()
