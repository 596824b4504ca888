"""Kill a real training process with SIGKILL in the middle of an epoch, resume it, and find nothing lost or doubled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tests.conftest import REPO_ROOT, compose_config
from vae_lab import run_dir
from vae_lab.errors import ConfigError, VaeLabError
from vae_lab.resume import resumed_config

EPOCHS = 2


def start(*args: str, new_session: bool = False) -> subprocess.Popen:
    # The pause callback lives in tests/ (a caller's PYTHONPATH, e.g. a source checkout, stays behind it);
    # `new_session`: a process group of its own, for `kill_when`.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))}
    # SIGINT as in a terminal: a test run in the background (a CI job started with `&`, then make) may start with
    # SIGINT ignored, which children inherit, and Ctrl-C would never reach the run (seen in a fresh-clone run).
    return subprocess.Popen(
        [sys.executable, "-m", "vae_lab.train", *args], cwd=REPO_ROOT, env=env, start_new_session=new_session,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def kill_when(process: subprocess.Popen, *ready: Path, group: bool = False, timeout: float = 240) -> None:
    """SIGKILL `process` (with `group`: its whole process group, e.g. a sweep's workers) once every `ready` file
    exists (PauseMidEpoch's marker: the run holds still mid-epoch); no handler, no flush, no cleanup."""
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in ready):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"the run never reached {[str(path) for path in ready]}"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL) if group else process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()  # applies TensorBoard's purge of events logged after a restart point
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


@pytest.mark.slow
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
    kill_when(first, marker)

    before = load(run_dir / "checkpoints" / "last.ckpt")
    assert before["epoch"] == 0  # only epoch 0 was complete
    assert not (run_dir / "training.gif").exists()

    resumed = start(f"resume={run_dir}")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output

    # train.log covers both starts.
    assert (run_dir / "train.log").read_text().count("GPU available") == 2  # Lightning's first line, once per start

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

    # HPARAMS: each start's session (one per events file) carries the first start's overrides, not the resume's.
    starts = [hparams_metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content).hparams
              for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
              for event in EventFileLoader(str(events)).Load() for value in event.summary.value
              if value.tag == hparams_metadata.SESSION_START_INFO_TAG]
    assert len(starts) == 2 and all(hparams["callbacks.gif.pacing"].string_value == "every" for hparams in starts)
    assert all(hparams["trainer.limit_train_batches"].number_value == 3 and "ckpt_path" not in hparams
               for hparams in starts)

    # The run's own record is kept: the first start's overrides, and the manifest notes the resume.
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert f"trainer.max_epochs={EPOCHS}" in overrides
    manifest = yaml.safe_load((run_dir / "manifest.json").read_text())
    assert [entry["ckpt_path"] for entry in manifest["resumes"]] == [str(run_dir / "checkpoints" / "last.ckpt")]

    # Resuming the finished run again: one sentence, exit 2, and the run's record stays as it was.
    result = (run_dir / "result.json").read_text()
    again = start(f"resume={run_dir}")
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 2
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"error: resume={run_dir} has nothing to train")
    assert f"trainer.max_epochs=N with N > {EPOCHS}" in last
    assert (run_dir / "result.json").read_text() == result and '"completed"' in result


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_records_interrupted_and_prints_the_resume_command(
    stop: signal.Signals, tmp_path: Path, mnist_data_dir: Path
) -> None:
    run_dir, marker = tmp_path / "run", tmp_path / "paused"
    run = start(
        "accelerator=cpu", f"paths.data_dir={mnist_data_dir}", f"hydra.run.dir={run_dir}", "trainer.max_epochs=2",
        "++trainer.limit_train_batches=3", "++trainer.limit_val_batches=1", "data.eval_batch_size=100",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false", "logger=none",
        "~callbacks.latent_manifold", "~callbacks.reconstructions", "~callbacks.gif", "~callbacks.posterior",
        "+callbacks.pause._target_=tests.pause_mid_epoch.PauseMidEpoch", f"+callbacks.pause.marker={marker}",
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert run.poll() is None, run.stdout.read()
        assert time.monotonic() < deadline, "the run never reached the middle of epoch 1"
        time.sleep(0.1)
    run.send_signal(stop)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 128 + stop
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    name = "SIGTERM" if stop == signal.SIGTERM else "SIGINT (Ctrl-C)"
    assert output.strip().splitlines()[-1] == f"interrupted by {name}; continue with: python -m vae_lab.train " \
                                              f"resume={run_dir}"


def fake_run(run_dir: Path, epochs_done: int, max_epochs: int, latent_dim: int = 50) -> Path:
    """A run folder as `train` leaves it, as far as resuming reads it: saved config and last.ckpt's progress."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(f"seed: 1\ntrainer:\n  max_epochs: {max_epochs}\n")
    (run_dir / "checkpoints").mkdir()
    progress = {"current": {"ready": epochs_done, "started": epochs_done, "processed": epochs_done, "completed": 0}}
    torch.save({"state_dict": {}, "epoch": epochs_done - 1, "hyper_parameters": {"latent_dim": latent_dim},
                "loops": {"fit_loop": {"epoch_progress": progress}}}, run_dir / "checkpoints" / "last.ckpt")
    return run_dir


def resumed(tmp_path: Path, target: Path, *overrides: str) -> object:
    """What `python -m vae_lab.train resume=<target> <overrides>` trains: the job's config."""
    return resumed_config(compose_config("train", [f"resume={target}", *overrides], tmp_path / "job"))


def test_resume_continues_the_runs_saved_config_from_its_checkpoint(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", epochs_done=1, max_epochs=2)
    last = run / "checkpoints" / "last.ckpt"
    assert run_dir(str(run), "new") == run_dir(str(last), "new") == str(run) and run_dir(None, "new") == "new"
    cfg = resumed(tmp_path, run)
    assert (cfg.seed, cfg.trainer.max_epochs, cfg.ckpt_path, cfg.warm_start_from) == (1, 2, str(last), None)
    cfg = resumed(tmp_path, last, "trainer.max_epochs=5", "++data.batch_size=7")  # this command's values win
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.seed) == (5, 7, 1)
    with pytest.raises(ConfigError, match=r"^resume=\S+ keeps the run's own model; drop model=mlp_vae"):
        resumed(tmp_path, run, "model=mlp_vae")
    with pytest.raises(ConfigError, match=r"^resume=\S+ has nothing to continue \(\S+/nowhere/.hydra/config.yaml "):
        resumed(tmp_path, tmp_path / "nowhere")
    last.unlink()
    with pytest.raises(ConfigError, match=r"^resume=\S+ has nothing to continue \(\S+/checkpoints/last.ckpt "):
        resumed(tmp_path, run)


def test_a_resume_continues_to_the_epoch_count_of_the_latest_start(tmp_path: Path) -> None:
    # Started with max_epochs=1, resumed with trainer.max_epochs=3 and killed after epoch 2: the manifest's latest
    # entry holds the 3, and `resume=<run>` alone must finish those 3 (the saved config still says 1).
    run = fake_run(tmp_path / "run", epochs_done=2, max_epochs=1)
    first = {"config": {"trainer": {"max_epochs": 1}}}
    (run / "manifest.json").write_text(json.dumps({**first, "resumes": [{"config": {"trainer": {"max_epochs": 3}}}]}))
    assert resumed(tmp_path, run).trainer.max_epochs == 3


def test_a_resume_with_nothing_to_train_or_a_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", epochs_done=3, max_epochs=3)
    for overrides in ([], ["trainer.max_epochs=2"]):
        with pytest.raises(ConfigError, match=r"^resume=\S+ has nothing to train: it has finished 3 epochs"):
            resumed(tmp_path, run, *overrides)
    assert resumed(tmp_path, run, "trainer.max_epochs=4").trainer.max_epochs == 4
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])  # cut short, as by a full disk or an unfinished copy
    with pytest.raises(VaeLabError, match=rf"^resume={last} is not a PyTorch checkpoint, or is one cut short"):
        resumed(tmp_path, run)


@pytest.mark.slow
def test_a_moved_run_resumes_into_its_own_last_ckpt(tmp_path: Path, mnist_data_dir: Path) -> None:
    # Lightning no longer recognizes the files of a moved run as its own and, by default, would write
    # last-v1.ckpt beside the stale last.ckpt, which the next resume would then read.
    first = start(
        "accelerator=cpu", f"paths.data_dir={mnist_data_dir}", f"hydra.run.dir={tmp_path / 'run'}",
        "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
        "data.eval_batch_size=100", "++trainer.enable_progress_bar=false", "logger=none",
        "~callbacks.latent_manifold", "~callbacks.reconstructions", "~callbacks.gif", "~callbacks.sample_grid",
    )
    assert first.wait(timeout=240) == 0, first.stdout.read()
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "run", moved)
    resumed = start(f"resume={moved}", "trainer.max_epochs=2")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output
    assert not [path.name for path in (moved / "checkpoints").iterdir() if "-v" in path.name]
    assert load(moved / "checkpoints" / "last.ckpt")["epoch"] == 1
