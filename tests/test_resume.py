"""Kill a real training process with SIGKILL in the middle of an epoch, resume it, and find nothing lost or doubled."""

from __future__ import annotations

import json
import os
import re
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

from tests.conftest import CONF_DIR, REPO_ROOT
from vae_lab import CONFIG_DIR
from vae_lab.errors import VaeLabError
from vae_lab.preflight import check_command_line
from vae_lab.resume import find_run, planned_max_epochs, resume_arguments
from vae_lab.train import TrainSettings

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

    # train.log covers both starts: the first one's epoch 1 (logged before the kill), then the resume's epoch 2.
    log = (run_dir / "train.log").read_text()
    epoch_lines = [line for line in log.splitlines() if "val/elbo" in line]
    assert [re.search(r"epoch \d+/\d+", line).group() for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert log.count("GPU available") == 2  # Lightning's first line, once per start

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
    assert output.strip().splitlines()[-1] == (
        f"error: resume={run_dir} has nothing to train: the run has finished {EPOCHS} epochs and trainer.max_epochs "
        f"is {EPOCHS}; add trainer.max_epochs=N with N > {EPOCHS} to train it further."
    )
    assert (run_dir / "result.json").read_text() == result and '"completed"' in result


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


def test_resume_argument_becomes_hydra_arguments(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(VaeLabError, match=r"cannot be resumed: the run kept no checkpoints \(its config has no "
                                          r"callbacks.last_checkpoint\)"):
        find_run(str(run_dir))
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\ncallbacks:\n  model_checkpoint: {}\n")
    with pytest.raises(VaeLabError, match=r"has no checkpoints/last.ckpt yet"):
        find_run(str(run_dir))
    shutil.rmtree(run_dir)
    fake_run(run_dir, epochs_done=1, max_epochs=2)
    assert resume_arguments([f"resume={run_dir}", "trainer.max_epochs=5"]) == [
        f"--config-path={run_dir / '.hydra'}",
        "--config-name=config",
        "trainer.max_epochs=5",
        f'hydra.run.dir="{run_dir}"',
        "hydra.output_subdir=null",
        f'hydra.searchpath=["file://{CONFIG_DIR}"]',
        "hydra/job_logging=vae_lab",
        "++warm_start_from=null",
        f'++ckpt_path="{run_dir / "checkpoints" / "last.ckpt"}"',
    ]
    quoted = resume_arguments([f"resume='{run_dir}'"])  # quoted as Hydra values are: resume='<dir with spaces>'
    assert quoted[-1] == f'++ckpt_path="{run_dir / "checkpoints" / "last.ckpt"}"'
    # Without a max_epochs of its own, a resume aims where the run's latest start aimed.
    assert "trainer.max_epochs=2" in resume_arguments([f"resume={run_dir}"])
    with pytest.raises(VaeLabError, match=r"^resume=\S+ does not exist; use resume=<run dir>"):
        find_run(str(tmp_path / "nowhere"))
    with pytest.raises(VaeLabError, match=r"is not a vae_lab run"):
        find_run(str(tmp_path))


def test_a_resume_continues_to_the_epoch_count_of_the_latest_start(tmp_path: Path) -> None:
    # Started with max_epochs=1, resumed with trainer.max_epochs=3 and killed after epoch 2: the manifest's latest
    # entry holds the 3, and `resume=<run>` alone must finish those 3 (the saved config still says 1).
    run_dir = fake_run(tmp_path / "run", epochs_done=2, max_epochs=1)
    first = {"config": {"trainer": {"max_epochs": 1}}}
    manifest = {**first, "resumes": [{"config": {"trainer": {"max_epochs": 3}}}]}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert planned_max_epochs(run_dir) == 3
    assert resume_arguments([f"resume={run_dir}"])[2] == "trainer.max_epochs=3"
    (run_dir / "manifest.json").write_text(json.dumps(first))
    assert planned_max_epochs(run_dir) == 1


def test_a_resume_with_nothing_to_train_or_other_weights_is_refused(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run", epochs_done=3, max_epochs=3)
    with pytest.raises(VaeLabError) as refused:
        resume_arguments([f"resume={run_dir}"])
    assert str(refused.value) == (
        f"resume={run_dir} has nothing to train: the run has finished 3 epochs and trainer.max_epochs is 3; "
        "add trainer.max_epochs=N with N > 3 to train it further."
    )
    with pytest.raises(VaeLabError, match=r"has nothing to train: the run has finished 3 epochs and "
                                          r"trainer.max_epochs is 2;"):
        resume_arguments([f"resume={run_dir}", "trainer.max_epochs=2"])
    assert "trainer.max_epochs=4" in resume_arguments([f"resume={run_dir}", "trainer.max_epochs=4"])
    with pytest.raises(VaeLabError) as refused:
        resume_arguments([f"resume={run_dir}", "trainer.max_epochs=4", "model.latent_dim=2"])
    assert str(refused.value) == (
        f"resume={run_dir} cannot change model.latent_dim to 2: the run's weights have latent_dim=50; start a new "
        "run (without resume=) for another latent size."
    )
    assert resume_arguments([f"resume={run_dir}", "trainer.max_epochs=4", "model.latent_dim=50"])
    # `++key=` counts as the same key; the resume's own value wins over the planned one.
    assert not [arg for arg in resume_arguments([f"resume={run_dir}", "++trainer.max_epochs=4"])
                if arg.startswith("trainer.max_epochs=")]


def test_a_corrupt_last_ckpt_is_called_corrupt_and_the_newest_intact_one_is_offered(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "run", epochs_done=2, max_epochs=3)
    last, intact = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "epoch_001.ckpt"
    shutil.copy(last, intact)
    os.utime(intact, (time.time() - 60, time.time() - 60))  # older than last.ckpt, as Lightning leaves them
    last.write_bytes(last.read_bytes()[:200])  # cut short, as by a full disk or an unfinished copy
    with pytest.raises(VaeLabError) as refused:
        resume_arguments([f"resume={run_dir}"])
    assert str(refused.value) == (
        f"resume={run_dir}: {last} is corrupt (truncated or damaged; torch.load cannot read it); the newest intact "
        f"checkpoint of the run is {intact} (2 epochs done): continue from it with resume={intact}."
    )
    assert resume_arguments([f"resume={intact}"])[-1] == f'++ckpt_path="{intact}"'  # and that command works
    intact.unlink()
    with pytest.raises(VaeLabError, match=r"is corrupt \(truncated or damaged; torch.load cannot read it\), and no "
                                          r"intact checkpoint is left beside it; start the run anew.$"):
        resume_arguments([f"resume={run_dir}"])


def test_a_warm_started_run_resumes_without_its_source_checkpoint(tmp_path: Path) -> None:
    # The saved config names the warm start's source, which may be gone by now; a resume never reads it.
    run_dir = fake_run(tmp_path / "run", epochs_done=1, max_epochs=2)
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(config.read_text() + f"ckpt_path: {tmp_path / 'gone.ckpt'}\nmodel:\n  latent_dim: 50\n")
    check_command_line(resume_arguments([f"resume={run_dir}"]), CONF_DIR, "train", TrainSettings)


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
