"""Nothing computed is lost: outputs tried before long work, results printed before written, files (checkpoints too,
loaded weights_only) written atomically, and a full or unwritable disk said in one sentence naming the path (a full
disk simulated: os.replace raises ENOSPC; an unwritable folder: a file where the folder should be, which stops root)."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config
from tests.test_evaluate import eval_cfg
from vae_lab import atomic_files
from vae_lab.checkpoints import AtomicCheckpointIO
from vae_lab.errors import VaeLabError
from vae_lab.evaluate import evaluate, write_metrics
from vae_lab.sample import sample

ADVICE = "free some space or make it writable, or choose another folder (output_dir=... for evaluate and sample, " \
         "hydra.run.dir=... for a run)."


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_files.os, "replace", no_space)


def test_a_full_disk_keeps_the_old_file_leaves_no_temp_file_and_names_the_path(tmp_path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    write_metrics({"test/elbo": -100.0}, path)
    full_disk(monkeypatch)
    with pytest.raises(VaeLabError) as raised:
        write_metrics({"test/elbo": -90.0}, path)
    assert str(raised.value) == f"cannot write {path} (No space left on device); {ADVICE}"
    assert path.read_text() == '{\n  "test/elbo": -100.0\n}\n'  # the old file, whole; never a 0-byte one
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_checkpoint_on_a_full_disk_is_one_sentence_not_torchs_enforce_fail(tmp_path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    full_disk(monkeypatch)
    with pytest.raises(VaeLabError, match=rf"^cannot write {path} \(No space left on device\); "):
        AtomicCheckpointIO().save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    assert list(path.parent.iterdir()) == []


def test_evaluate_into_an_unwritable_folder_is_refused_before_scoring(
    tiny_checkpoint: Path, mnist_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "blocked").write_text("a file where a folder is expected")
    output_dir = tmp_path / "blocked" / "eval"
    cfg = eval_cfg(tiny_checkpoint, tmp_path / "cfg", mnist_data_dir, f"output_dir={output_dir}")
    monkeypatch.setattr("vae_lab.evaluate.score_batch", lambda *a: pytest.fail("scored before checking the folder"))
    with pytest.raises(VaeLabError) as raised:
        evaluate(cfg)
    assert str(raised.value) == f"cannot write {output_dir} (Not a directory); {ADVICE}"


def test_evaluate_on_a_full_disk_prints_the_metrics_before_the_one_sentence(
    tiny_checkpoint: Path, mnist_data_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    cfg = eval_cfg(tiny_checkpoint, tmp_path, mnist_data_dir)
    full_disk(monkeypatch)
    with pytest.raises(VaeLabError, match=rf"^cannot write {tmp_path / 'metrics.json'} \(No space left on device\)"):
        evaluate(cfg)
    assert "test/elbo" in capsys.readouterr().out  # the table, with the numbers, was printed first
    assert not list(tmp_path.glob("metrics.json")) and not list(tmp_path.glob(".*.tmp"))


def test_sample_on_a_full_disk_leaves_no_zero_byte_png(tiny_checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = compose_config("sample", [f"ckpt_path={tiny_checkpoint}", f"output_dir={tmp_path}", "n=4"], tmp_path)
    full_disk(monkeypatch)
    with pytest.raises(VaeLabError, match=rf"^cannot write {tmp_path / 'samples.png'} \(No space left on device\)"):
        sample(cfg)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*.tmp"))


def test_images_and_report_figures_on_a_full_disk_keep_the_old_file(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    import imageio.v3 as iio
    import numpy as np
    from matplotlib.figure import Figure

    from vae_lab.callbacks.gif import TrainingGif
    from vae_lab.callbacks.sample_grid import SampleGrid
    from vae_lab.report import save_figure

    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[])
    iio.imwrite(tmp_path / "image_at_epoch_0000.png", np.zeros((12, 12, 3), np.uint8))
    iio.imwrite(tmp_path / "image_at_epoch_0001.png", np.full((12, 12, 3), 9, np.uint8))
    old = {name: b"old " + name.encode() for name in ("training.gif", "report.png")}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)
    old["image_at_epoch_0001.png"] = (tmp_path / "image_at_epoch_0001.png").read_bytes()
    full_disk(monkeypatch)
    writes = {
        "training.gif": lambda: TrainingGif(dirpath=str(tmp_path)).on_train_end(trainer, None),
        "report.png": lambda: save_figure(Figure(), tmp_path / "report.png"),
        "image_at_epoch_0001.png": lambda: SampleGrid(dirpath=str(tmp_path)).save_grid(
            trainer, torch.zeros(3, 12, 12), "samples/grid", "image_at_epoch_0001.png", 1),
    }
    for name, write in writes.items():
        with pytest.raises(VaeLabError, match=rf"^cannot write {tmp_path / name} \(No space left on device\); "):
            write()
        assert (tmp_path / name).read_bytes() == old[name]  # the old file, whole; never half a new one
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*old, "image_at_epoch_0000.png"])  # no temp files


class NotAWeight:
    pass


def test_save_load_and_crash_mid_save_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    assert io.load_checkpoint(path)["epoch"] == 1

    def dies_halfway(obj, stream) -> None:
        stream.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # what a kill looks like from inside the process

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["epoch"] == 1  # the old checkpoint, intact
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left behind
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_loading_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": NotAWeight()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        AtomicCheckpointIO().load_checkpoint(path)
