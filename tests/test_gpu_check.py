"""benchmarks/gpu_check.sh on a machine without CUDA (it refuses) and the wheels it ships (they install offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu_check.sh would run for minutes")
def test_refuses_at_once_without_cuda(tmp_path: Path) -> None:
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert "torch.cuda.is_available()" in done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before installing anything


@pytest.mark.slow  # pip installs the wheels: make test-all
def test_shipped_wheels_install_offline_and_compose_the_config(tmp_path: Path) -> None:
    wheels = sorted(str(path) for path in (REPO_ROOT / "benchmarks" / "wheels").glob("*-py*-none-any.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target",
                    str(site), *wheels], check=True, capture_output=True)
    probe = ("import hydra, omegaconf, antlr4, pytest; from hydra import compose, initialize_config_dir\n"
             f"with initialize_config_dir(config_dir={str(REPO_ROOT / 'conf')!r}, version_base='1.3'):\n"
             "    cfg = compose('train', overrides=['accelerator=gpu', '+callbacks.runtime.compile=reduce-overhead'])\n"
             "print(hydra.__file__, omegaconf.__file__, antlr4.__file__, cfg.trainer.accelerator)")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO_ROOT / 'src'}"}
    printed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    *files, accelerator = printed.stdout.split()
    assert all(Path(file).is_relative_to(site) for file in files) and accelerator == "gpu"
