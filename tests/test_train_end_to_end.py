import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO_ROOT
from vae_lab.models.cvae import CVAE
from vae_lab.train import train


def scalar_tags(run_dir: Path) -> dict[str, list[int]]:
    steps: dict[str, list[int]] = {}
    for events in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(event.step for event in accumulator.Scalars(tag))
    return steps


def test_train_on_real_mnist_writes_a_loadable_checkpoint_and_scalars(make_train_cfg) -> None:
    cfg = make_train_cfg("model.latent_dim=4", "trainer.max_epochs=2")
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)

    assert {"train/elbo", "val/elbo", "val/recon", "val/kl"} <= set(metrics)
    assert -700 < metrics["val/elbo"] < -100
    assert abs(metrics["val/elbo"] - (metrics["val/recon"] - metrics["val/kl"])) < 1e-3

    tags = scalar_tags(run_dir)
    for tag in ("train/elbo", "val/elbo", "val/recon", "val/kl"):
        assert len(tags[tag]) == 2, tag  # one point per epoch

    model = CVAE.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    assert model.hparams.latent_dim == 4
    probabilities = model.decode_mean(torch.zeros(3, 4))
    assert probabilities.shape == (3, 1, 28, 28)
    assert 0.0 <= probabilities.min() and probabilities.max() <= 1.0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vae_lab.train", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_gpu_request_without_cuda_fails_at_once_in_one_sentence(tmp_path: Path) -> None:
    for number, override in enumerate(("trainer.accelerator=gpu", "accelerator=gpu")):
        run_dir = tmp_path / f"run{number}"
        result = run_cli(override, f"hydra.run.dir={run_dir}")
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        error_lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert error_lines[-1].startswith("error: trainer.accelerator=gpu needs a CUDA GPU")
        assert not (run_dir / "checkpoints").exists()


@pytest.mark.slow  # the command line: make test-all
def test_help_lists_the_config_groups() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for group in ("accelerator:", "data:", "model:", "experiment:", "trainer:", "logger:", "callbacks: default, none\n"
                  ):
        assert group in result.stdout
