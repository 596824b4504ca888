"""A bad value gets one `error:` line naming its key, and exit code 2: from the constructor that takes the value,
composed once by Hydra (a misspelt key gets Hydra's own message)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_lab.errors import USAGE_EXIT, ConfigError, exit_on_user_error
from vae_lab.preflight import HEADROOM, check_memory
from vae_lab.train import train


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.latent_dim=0", "model.latent_dim=0"),
        ("model.latent_dim=abc", "model.latent_dim="),
        ("data.batch_size=-5", "data.batch_size=-5"),
        ("data.binarize=maybe", "data.binarize="),
        ("callbacks.gif.pacing=foo", "callbacks.gif.pacing="),
        ("callbacks.gif.frame_ms=0", "callbacks.gif.frame_ms=0"),
        ("callbacks.sample_grid.num_samples=0", "callbacks.sample_grid.num_samples=0"),
        ("callbacks.sample_grid.seed=-3", "callbacks.sample_grid.seed=-3"),
        ("callbacks.reconstructions.every_n_epochs=0", "callbacks.reconstructions.every_n_epochs=0"),
        ("callbacks.latent_manifold.num_points=-1", "callbacks.latent_manifold.num_points=-1"),
        ("trainer.precision=foo", "trainer: "),  # Lightning's own sentence: names 'foo' and the allowed values
        ("trainer.max_epochs=-2", "trainer: "),
        ("+model.latnt_dim=2", "model: "),  # a key the constructor does not take
        ("seed=-1", "seed=-1"),
        ("test_after_fit=maybe", "test_after_fit='maybe'"),
        ("threads=100000", "threads=100000"),
    ],
)
def test_a_bad_value_is_one_config_error_naming_its_key(override: str, named: str, make_train_cfg) -> None:
    with pytest.raises(ConfigError) as refused:
        callbacks = [] if override.startswith("callbacks") else ["callbacks=none"]
        train(make_train_cfg(override, "logger=none", *callbacks))
    message = str(refused.value)
    assert message.startswith(named) and "\n" not in message
    assert (override.split("=", 1)[1] if named != "model: " else "latnt_dim") in message  # the bad value itself


def test_a_bad_value_exits_2_with_one_error_line_and_a_failed_result(
    make_train_cfg, capsys: pytest.CaptureFixture[str]
) -> None:
    from vae_lab.sweep_outcome import run_recorded

    cfg = make_train_cfg("model.latent_dim=abc", "logger=none", "callbacks=none")
    with pytest.raises(SystemExit) as exited:  # what `main` does with train(cfg)
        exit_on_user_error(lambda job_cfg: run_recorded(train, job_cfg), cfg)
    assert exited.value.code == USAGE_EXIT
    err = capsys.readouterr().err
    assert err.startswith("error: model.latent_dim=abc") and err.count("\n") == 1
    assert '"status": "failed"' in (Path(cfg.paths.output_dir) / "result.json").read_text()


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vae_lab.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_cli_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "model.latent_dim=abc", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == USAGE_EXIT
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [done.stderr.strip()]
    assert done.stderr.startswith("error: model.latent_dim=abc")
    assert '"status": "failed"' in (tmp_path / "run" / "result.json").read_text()  # a run that failed at once


def test_memory_estimates_refuse_a_size_that_would_not_fit(make_train_cfg) -> None:
    with pytest.raises(ConfigError) as refused:
        check_memory(make_train_cfg("data.batch_size=60000"), available=16e9)
    assert str(refused.value).startswith("data.batch_size=60000 needs about 28.7 GB")
    with pytest.raises(ConfigError, match=r"in each of 2 processes"):
        check_memory(make_train_cfg("data.batch_size=15000", "trainer.devices=2"), available=15e9)
    check_memory(make_train_cfg("data.batch_size=15000"), available=16e9)  # fits
    check_memory(make_train_cfg("data.batch_size=60000", "trainer.accelerator=gpu"), available=16e9)  # GPU memory
    for override in ("callbacks.latent_manifold.grid_size=1000", "callbacks.sample_grid.num_samples=1000000"):
        with pytest.raises(ConfigError, match=rf"^{override} needs about 241.1 GB"):
            check_memory(make_train_cfg(override), available=16e9)
    check_memory(make_train_cfg(), available=16e9)  # the defaults fit


def test_a_size_that_fits_only_without_headroom_is_refused(make_train_cfg) -> None:
    # grid_size=300 was estimated at 22.7 GB and peaked at 23.4 GB on a machine with 23 GB available.
    cfg = make_train_cfg("callbacks.latent_manifold.grid_size=300")
    with pytest.raises(ConfigError, match=r"^callbacks.latent_manifold.grid_size=300 needs about 22.7 GB"):
        check_memory(cfg, available=23e9)
    check_memory(cfg, available=22.7e9 * HEADROOM)


def test_threads_must_be_null_or_within_the_cores(make_train_cfg) -> None:
    import torch

    from vae_lab.preflight import set_threads

    threads = torch.get_num_threads()
    set_threads(None)
    set_threads(1)
    torch.set_num_threads(threads)
    for bad in (0, (os.cpu_count() or 1) + 1, "two", True):  # more than the cores this process may use
        with pytest.raises(ConfigError, match=rf"^threads={bad} is not allowed"):
            set_threads(bad)
