"""Same seed and config on the CPU: the same val/elbo every epoch; and every run directory has its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vae_lab.data.datamodule import files_sha256
from vae_lab.data.mnist_files import OFFICIAL_MD5
from vae_lab.train import train


def val_elbo_per_epoch(run_dir: Path) -> list[float]:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return [event.value for event in accumulator.Scalars("val/elbo")]


def test_two_runs_with_one_seed_log_identical_val_elbo(make_train_cfg, tmp_path: Path) -> None:
    overrides = ("trainer.max_epochs=2", "callbacks=none", "data.binarize=dynamic", "seed=7")
    overrides += ("++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1", "data.eval_batch_size=300")
    curves = []
    for name in ("first", "second"):
        cfg = make_train_cfg(*overrides)
        train(cfg)
        run_dir = Path(cfg.paths.output_dir).rename(tmp_path / name)  # make_train_cfg reuses one folder
        curves.append(val_elbo_per_epoch(run_dir))
    assert len(curves[0]) == 2
    assert curves[0] == curves[1]  # exactly, not approximately

    manifest = json.loads((tmp_path / "first" / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 7 and manifest["config"]["data"]["binarize"] == "dynamic"
    assert manifest["config"]["paths"]["output_dir"] == str(tmp_path / "run")  # resolved, not ${hydra:...}
    raw = Path(manifest["config"]["paths"]["data_dir"]) / "MNIST" / "raw"
    assert manifest["data"]["sha256"] == files_sha256([raw / name for name in OFFICIAL_MD5])  # the files read
    assert manifest["device"]["root_device"] == "cpu" and manifest["device"]["world_size"] == 1
    assert set(manifest["versions"]) == {"vae_lab", "python", "torch", "lightning", "hydra"}
    assert len(manifest["git"]["commit"]) == 40  # the tests run in the repository's checkout


def test_a_run_stopped_and_resumed_ends_where_an_uninterrupted_one_does(make_train_cfg, tmp_path: Path) -> None:
    # The ELBO's noise comes from torch's global generator; its state travels in the checkpoint (resume_state.py).
    tiny = ("logger=none", "~callbacks.latent_manifold", "~callbacks.reconstructions", "~callbacks.gif",
            "++trainer.limit_train_batches=3", "++trainer.limit_val_batches=1", "data.eval_batch_size=300")
    straight = make_train_cfg("trainer.max_epochs=2", *tiny)
    metrics_straight = train(straight)
    straight_dir = Path(straight.paths.output_dir).rename(tmp_path / "straight")  # make_train_cfg reuses one folder

    first = make_train_cfg("trainer.max_epochs=1", *tiny)
    train(first)
    checkpoint = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    metrics_resumed = train(make_train_cfg("trainer.max_epochs=2", f"ckpt_path={checkpoint}", *tiny))

    assert metrics_resumed["val/elbo"] == metrics_straight["val/elbo"]  # exactly, not approximately
    weights = [torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
               for run in (straight_dir, checkpoint.parent.parent)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
