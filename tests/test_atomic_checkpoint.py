"""Checkpoints are replaced in one step (a crash mid-save keeps the old file) and load with weights_only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from vae_lab.checkpoints import AtomicCheckpointIO


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
