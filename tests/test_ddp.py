"""Lightning's DDP with 2 CPU processes (gloo) through the Hydra command line: one run directory, files once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow  # two processes through the command line: make test-all


def test_two_process_ddp_run_completes_into_one_run_dir(tmp_path: Path, mnist_data_dir: Path) -> None:
    # The README's command, shrunk; started from an empty folder with Hydra's default run dir (outputs/<date>/<time>)
    # so that a second run directory made by the rank-1 process would show.
    result = subprocess.run(
        [
            sys.executable, "-m", "vae_lab.train", "accelerator=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
            "trainer.max_epochs=1", f"paths.data_dir={mnist_data_dir}", "++trainer.limit_train_batches=2",
            "++trainer.limit_val_batches=1", "data.eval_batch_size=100", "++trainer.enable_progress_bar=false",
            "++trainer.enable_model_summary=false", "~callbacks.latent_manifold", "~callbacks.reconstructions",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = [path for path in (tmp_path / "outputs").glob("*/*") if path.is_dir()]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]

    # Both ranks ran in that directory: Hydra's log of each process; config saved once (rank 0).
    assert (run_dir / "train.log").is_file() and (run_dir / "train_ddp_process_1.log").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["device"]["world_size"] == 2 and manifest["device"]["accelerator"] == "CPUAccelerator"

    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 2  # 2 steps, each on both ranks' shards

    [events] = (run_dir / "tensorboard").glob("events.out.tfevents.*")  # one writer: rank zero's
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    [val_elbo] = accumulator.Scalars("val/elbo")  # reduced across ranks (sync_dist), logged once
    assert -800 < val_elbo.value < 0
    assert sorted(path.name for path in run_dir.glob("image_at_epoch_*.png")) == [
        "image_at_epoch_0000.png", "image_at_epoch_0001.png"
    ]
