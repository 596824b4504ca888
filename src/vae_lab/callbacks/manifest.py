"""`<run dir>/manifest.json`, written when the fit starts (rank zero): what it takes to reproduce the run (config,
versions, git commit, device, kernels, data checksums). A resumed run appends its own record to `resumes`."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

import vae_lab
from vae_lab.atomic_files import atomic_write_text

MANIFEST = "manifest.json"


def git_state() -> dict[str, Any]:
    """{"commit": sha, "dirty": bool}, or {"commit": None} outside a git checkout (e.g. an installed wheel)."""
    try:
        lines = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[3]), "status", "--porcelain=v2",
                                "--branch", "--untracked-files=no"], capture_output=True, text=True, timeout=10,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    commit = next(line.split()[-1] for line in lines if line.startswith("# branch.oid"))
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in lines)}


class RunManifest(L.Callback):
    def __init__(self, dirpath: str, config: DictConfig | dict[str, Any] | None = None) -> None:
        self.path = Path(dirpath) / MANIFEST
        self.config = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else config or {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": {"vae_lab": vae_lab.__version__, "python": platform.python_version(),
                         **{module.__name__: module.__version__ for module in (torch, L, hydra)}},
            "git": git_state(),
            "device": {"accelerator": type(trainer.accelerator).__name__,
                       "root_device": str(trainer.strategy.root_device), "world_size": trainer.world_size,
                       "num_nodes": trainer.num_nodes, "precision": str(trainer.precision)},
            "runtime": getattr(pl_module, "fast_path", None),  # set by callbacks.runtime when the fit set up
            "config": self.config, "ckpt_path": trainer.ckpt_path,
            # the binarized test images (equal for comparable runs), and the data's source, sha256 and treatment
            "test_set_md5": data.test_set_md5() if hasattr(data, "test_set_md5") else None,
            "data": getattr(data, "provenance", None),
        }
        first = json.loads(self.path.read_text()) if trainer.ckpt_path is not None and self.path.is_file() else None
        manifest = {**first, "resumes": [*first.get("resumes", []), record]} if first else record
        atomic_write_text(self.path, json.dumps(manifest, indent=2, default=str))
