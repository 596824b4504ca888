"""`<run dir>/manifest.json`: what it takes to reproduce a run, written when the fit starts (rank zero only).

Records the resolved config, the vae_lab version and git commit (with a dirty flag), the torch / Lightning /
Hydra versions, the device and world size, the kernels `callbacks.runtime` picked for this machine (`runtime`:
its measured choice, callbacks/fast_path.py), and the MD5 of every data file read. A resumed run keeps the first
record and appends one entry per resume to `resumes`.
"""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

import vae_lab
from vae_lab.atomic_files import atomic_write_text
from vae_lab.data.mnist_files import OFFICIAL_MD5, md5_of

MANIFEST = "manifest.json"
REPO_DIR = Path(__file__).resolve().parents[3]


def git_state(repo_dir: Path = REPO_DIR) -> dict[str, Any]:
    """{"commit": sha, "dirty": bool}, or {"commit": None} outside a git checkout (e.g. an installed wheel)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def data_md5s(data_dir: Path) -> dict[str, str | None]:
    raw_dir = data_dir / "MNIST" / "raw"
    return {name: md5_of(raw_dir / name) if (raw_dir / name).is_file() else None for name in OFFICIAL_MD5}


def versions() -> dict[str, str]:
    import hydra
    import torch

    return {
        "vae_lab": vae_lab.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "hydra": hydra.__version__,
    }


class RunManifest(L.Callback):
    """Writes `manifest.json` into `dirpath`, recording `config` (the run's model, data, trainer, seed) resolved."""

    def __init__(self, dirpath: str, config: DictConfig | dict[str, Any] | None = None) -> None:
        self.run_dir = Path(dirpath)
        resolved = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else config
        self.config = resolved or {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        data_dir = getattr(trainer.datamodule, "data_dir", None)
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
            "git": git_state(),
            "device": {
                "accelerator": type(trainer.accelerator).__name__,
                "root_device": str(trainer.strategy.root_device),
                "world_size": trainer.world_size,
                "num_nodes": trainer.num_nodes,
                "precision": str(trainer.precision),
            },
            "runtime": getattr(pl_module, "fast_path", None),  # set by callbacks.runtime when the fit set up
            "data_md5": data_md5s(Path(data_dir)) if data_dir is not None else {},
        }
        test_set_md5 = getattr(trainer.datamodule, "test_set_md5", None)
        if test_set_md5 is not None:
            trainer.datamodule.setup("fit")
            record["test_set_md5"] = test_set_md5()  # the binarized test images: equal for comparable runs
        path = self.run_dir / MANIFEST
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if trainer.ckpt_path is not None and path.is_file():
            manifest = json.loads(path.read_text())
            resume = {**record, "config": self.config, "ckpt_path": str(trainer.ckpt_path)}
            manifest.setdefault("resumes", []).append(resume)
        else:
            manifest = {**record, "config": self.config, "ckpt_path": trainer.ckpt_path}
        atomic_write_text(path, json.dumps(manifest, indent=2, default=str))
