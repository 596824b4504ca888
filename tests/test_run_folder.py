"""One run, one folder: default folders never collide, an explicit folder holding a run or sweep is refused."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import CONF_DIR, compose_config, small_train_overrides
from tests.test_sweeps import TINY  # tiny jobs with checkpoints

RUN_DIR_PATTERN = re.compile(r"outputs/\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}-\d{6}$")


def train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vae_lab.train", *args], capture_output=True, text=True, timeout=600)


def snapshot(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in sorted(folder.rglob("*"))}


def test_two_runs_started_in_the_same_second_get_different_folders() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        dirs = [compose(config_name="train", return_hydra_config=True).hydra.run.dir for _ in range(2)]
    assert all(RUN_DIR_PATTERN.search(path) for path in dirs), dirs
    assert dirs[0] != dirs[1]  # microseconds in the time part, even when the seconds agree


def test_a_folder_holding_a_run_is_refused_unless_the_run_continues_there(
    tmp_path: Path, mnist_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: Hydra's run-start callback (conf/hydra/default.yaml) on each composed config, then train(cfg).
    import torch

    from vae_lab.resume import OneRunPerFolder
    from vae_lab.train import train

    run_dir = tmp_path / "run"
    base = [*small_train_overrides(mnist_data_dir), "callbacks/each=[model_checkpoint]", "logger=none"]
    first = compose_config("train", base, run_dir)
    OneRunPerFolder().on_run_start(first)  # an empty folder: the run goes ahead
    train(first)
    before = snapshot(run_dir)

    with pytest.raises(SystemExit) as refused:
        OneRunPerFolder().on_run_start(compose_config("train", [*base, "model.latent_dim=4"], run_dir))
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: hydra.run.dir={run_dir} already holds a run") and err.count("\n") == 1
    assert f"resume={run_dir}" in err and f"rm -r {run_dir}" in err
    assert snapshot(run_dir) == before  # nothing written, nothing touched

    OneRunPerFolder().on_run_start(compose_config("train", [f"resume={run_dir}"], run_dir))  # resume= may go there
    last = run_dir / "checkpoints" / "last.ckpt"
    continued = compose_config("train", [*base, f"ckpt_path={last}", "trainer.max_epochs=2"], run_dir)
    OneRunPerFolder().on_run_start(continued)  # so may its own checkpoint: continuing the run is what it is for
    train(continued)
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 1 and saved["global_step"] == 8  # 4 + 4 steps: the run went on where it stopped


def test_a_folder_holding_a_sweep_is_refused_unless_it_is_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vae_lab.resume import SWEEP_RECORD, OneRunPerFolder
    from vae_lab.sweep_outcome import JobResult, write_result

    sweep_dir = tmp_path / "sweep"
    cfg = compose_config("train", [f"hydra.sweep.dir={sweep_dir}"], tmp_path / "job")
    OneRunPerFolder().on_multirun_start(cfg)  # a new folder: the sweep goes ahead, its command line recorded
    assert (sweep_dir / SWEEP_RECORD).is_file()
    (sweep_dir / "0").mkdir()
    write_result(sweep_dir / "0", JobResult("completed", {"val/elbo": -100.0}))  # its first job
    before = snapshot(sweep_dir)

    with pytest.raises(SystemExit) as refused:
        OneRunPerFolder().on_multirun_start(cfg)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: hydra.sweep.dir={sweep_dir} already holds a sweep") and err.count("\n") == 1
    assert f"resume={sweep_dir}" in err
    assert snapshot(sweep_dir) == before

    OneRunPerFolder(resume=str(sweep_dir)).on_multirun_start(cfg)  # resume=<sweep dir> continues it there


def test_a_run_folder_that_cannot_be_made_is_refused_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vae_lab.resume import OneRunPerFolder

    (tmp_path / "blocked").write_text("a file where a folder is expected")
    folder = tmp_path / "blocked" / "run"
    cfg = compose_config("train", [f"hydra.run.dir={folder}"], tmp_path / "cfg")
    with pytest.raises(SystemExit) as refused:
        OneRunPerFolder().on_run_start(cfg)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {folder} (Not a directory); ") and err.count("\n") == 1
    assert "hydra.run.dir=..." in err


@pytest.mark.slow  # the command line, run after run: make test-all
def test_a_second_run_into_the_same_explicit_folder_is_refused_and_resume_continues_it(
    tmp_path: Path, mnist_data_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    first = train(*TINY, f"paths.data_dir={mnist_data_dir}", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(run_dir)

    second = train(*TINY, "model.latent_dim=4", f"paths.data_dir={mnist_data_dir}", f"hydra.run.dir={run_dir}")
    assert second.returncode == 2
    assert second.stderr == (
        f"error: hydra.run.dir={run_dir} already holds a run; to continue it use resume={run_dir}, to keep it and "
        "start anew pick a new folder (or leave hydra.run.dir out), to replace it delete it first "
        f"(rm -r {run_dir}).\n"
    )
    assert snapshot(run_dir) == before  # nothing written, nothing touched

    resumed = train(f"resume={run_dir}", "trainer.max_epochs=2")  # continuing the run there is what it is for
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert '"status": "completed"' in (run_dir / "result.json").read_text()


@pytest.mark.slow  # the command line, run after run: make test-all
def test_a_sweep_into_an_existing_sweep_folder_is_refused(tmp_path: Path, mnist_data_dir: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "model.latent_dim=2", *TINY, f"paths.data_dir={mnist_data_dir}", f"hydra.sweep.dir={sweep_dir}"]
    first = train(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"sweep {sweep_dir}: 1 job: 1 completed" in first.stdout
    before = snapshot(sweep_dir)

    second = train(*args[:1], "model.latent_dim=2,4", *args[2:])
    assert second.returncode == 2
    assert second.stderr == (
        f"error: hydra.sweep.dir={sweep_dir} already holds a sweep; to continue it use resume={sweep_dir}, to keep "
        "it and start anew pick a new folder (or leave hydra.sweep.dir out), to replace it delete it first "
        f"(rm -r {sweep_dir}).\n"
    )
    assert snapshot(sweep_dir) == before


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (skips where this process may not mount: not root, or a container without the right)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs is not allowed here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow  # the command line: make test-all
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_run_or_sweep_into_a_read_only_folder_is_one_sentence(read_only_folder: Path, sweep: bool) -> None:
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    done = train(*(["-m", "seed=1,2"] if sweep else []), f"{key}={read_only_folder / 'x'}", "trainer.max_epochs=1")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == (
        f"error: cannot write {read_only_folder / 'x'} (Read-only file system); free some space or make it writable, "
        "or choose another folder (output_dir=... for evaluate and sample, hydra.run.dir=... for a run).\n"
    )
