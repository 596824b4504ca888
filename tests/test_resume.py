"""Kill a real training process with SIGKILL in the middle of an epoch, resume it, and find nothing lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO_ROOT
from vae_lab.errors import VaeLabError
from vae_lab.resume import find_run, resume_arguments

EPOCHS = 2


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # the pause callback lives in tests/
    return subprocess.Popen(
        [sys.executable, "-m", "vae_lab.train", *args], cwd=REPO_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()  # applies TensorBoard's purge of events logged after a restart point
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_sigkill_mid_epoch_then_resume_completes_every_epoch_once(tmp_path: Path, mnist_data_dir: Path) -> None:
    run_dir, marker = tmp_path / "run", tmp_path / "paused"
    first = start(
        "accelerator=cpu", f"paths.data_dir={mnist_data_dir}", f"hydra.run.dir={run_dir}",
        f"trainer.max_epochs={EPOCHS}", "++trainer.limit_train_batches=3", "++trainer.limit_val_batches=1",
        "data.eval_batch_size=100", "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
        "~callbacks.latent_manifold", "~callbacks.reconstructions", "callbacks.gif.pacing=every",
        # Epoch 1, after 2 of its 3 batches: mark the moment and hold still until killed.
        "+callbacks.pause._target_=tests.pause_mid_epoch.PauseMidEpoch", f"+callbacks.pause.marker={marker}",
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the run never reached the middle of epoch 1"
        time.sleep(0.1)
    first.kill()  # SIGKILL: no handler, no flush, no cleanup
    first.wait()
    assert first.returncode == -9

    before = load(run_dir / "checkpoints" / "last.ckpt")
    assert before["epoch"] == 0  # only epoch 0 was complete
    assert not (run_dir / "training.gif").exists()

    resumed = start(f"resume={run_dir}")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output

    after = load(run_dir / "checkpoints" / "last.ckpt")
    assert after["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == EPOCHS
    assert after["epoch"] == EPOCHS - 1
    assert torch.equal(after["callbacks"]["SampleGrid"]["z"], before["callbacks"]["SampleGrid"]["z"])

    # Both processes wrote into the same TensorBoard folder; every epoch's val/elbo appears exactly once.
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    val_steps = [step for step, _ in scalars(run_dir, "val/elbo")]
    assert len(val_steps) == EPOCHS and len(set(val_steps)) == EPOCHS
    epochs_at_val = sorted({int(value) for step, value in scalars(run_dir, "epoch") if step in val_steps})
    assert epochs_at_val == list(range(EPOCHS))

    # The GIF has a frame for the untrained model and for every epoch, across the kill.
    pngs = sorted(path.name for path in run_dir.glob("image_at_epoch_*.png"))
    assert pngs == [f"image_at_epoch_{epoch:04d}.png" for epoch in range(EPOCHS + 1)]
    assert iio.imread(run_dir / "training.gif", index=None).shape[0] == EPOCHS + 1

    # The run's own record is kept: the first start's overrides, and the manifest notes the resume.
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert f"trainer.max_epochs={EPOCHS}" in overrides
    manifest = yaml.safe_load((run_dir / "manifest.json").read_text())
    assert [entry["ckpt_path"] for entry in manifest["resumes"]] == [str(run_dir / "checkpoints" / "last.ckpt")]


def test_resume_argument_becomes_hydra_arguments(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(VaeLabError, match=r"has no checkpoints/last.ckpt yet"):
        find_run(str(run_dir))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resume_arguments([f"resume={run_dir}", "trainer.max_epochs=5"]) == [
        f"--config-path={run_dir / '.hydra'}",
        "--config-name=config",
        "trainer.max_epochs=5",
        f'hydra.run.dir="{run_dir}"',
        "hydra.output_subdir=null",
        f'ckpt_path="{run_dir / "checkpoints" / "last.ckpt"}"',
    ]
    with pytest.raises(VaeLabError, match=r"^resume=\S+ does not exist; use resume=<run dir>"):
        find_run(str(tmp_path / "nowhere"))
    with pytest.raises(VaeLabError, match=r"is not a vae_lab run"):
        find_run(str(tmp_path))
