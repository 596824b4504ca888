"""Every option of every config group composes, and everything it describes instantiates."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from tests.conftest import CONF_DIR, compose_config
from vae_lab.errors import VaeLabError
from vae_lab.preflight import check_device
from vae_lab.train import instantiate_group

# Single callback files (conf/callbacks/each/sample_grid.yaml, ...) are entries that callbacks=default composes; the
# group's selectable options are default and none. Experiments are added (+experiment=seed), not chosen.
GROUP_OPTIONS = sorted(
    (group.name, option.stem)
    for group in CONF_DIR.iterdir()
    if group.is_dir() and group.name != "hydra"
    for option in group.glob("*.yaml")
)


def instantiate_all(cfg: DictConfig) -> dict[str, object]:
    return {
        "data": instantiate(cfg.data),
        "model": instantiate(cfg.model),
        "callbacks": instantiate_group(cfg.get("callbacks"), "callbacks"),
        "logger": instantiate_group(cfg.get("logger"), "logger"),
        "trainer": instantiate(cfg.trainer),
    }


def test_every_group_has_options() -> None:
    groups = {group for group, _ in GROUP_OPTIONS}
    assert {"data", "model", "trainer", "accelerator", "callbacks", "logger", "paths", "experiment"} <= groups


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_option_composes_and_instantiates(group: str, option: str, tmp_path: Path, mnist_data_dir: Path) -> None:
    extra = [f"data.path={mnist_data_dir}"] if (group, option) == ("data", "images") else []  # a folder is enough
    plus = "+" if group == "experiment" else ""
    cfg = compose_config("train", [f"{plus}{group}={option}", f"paths.data_dir={mnist_data_dir}", *extra], tmp_path)
    if cfg.trainer.accelerator in ("gpu", "cuda"):
        with pytest.raises(VaeLabError, match="needs a CUDA GPU"):
            check_device("trainer.accelerator", cfg.trainer.accelerator)
        return
    built = instantiate_all(cfg)
    assert built["model"].hparams.latent_dim == cfg.model.latent_dim
    assert built["data"].hparams.batch_size == cfg.data.batch_size
    assert built["trainer"].max_epochs == cfg.trainer.max_epochs


def test_default_callbacks_instantiate_every_callback_file(tmp_path: Path) -> None:
    cfg = compose_config("train", [], tmp_path)
    callback_files = {path.stem for path in (CONF_DIR / "callbacks" / "each").glob("*.yaml")}
    callback_files.add("last_checkpoint")  # model_checkpoint.yaml holds two: the best epoch and last.ckpt
    assert set(cfg.callbacks) == callback_files
    built = instantiate_group(cfg.callbacks, "callbacks")
    assert len(built) == len(callback_files)


def test_only_real_presets_are_choices_of_callbacks(tmp_path: Path) -> None:
    # callbacks=gif used to run with the GIF callback alone: no checkpoints, nothing to resume.
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as refused:
        compose_config("train", ["callbacks=gif"], tmp_path)
    assert sorted(refused.value.options) == ["default", "none"]
    cfg = compose_config("train", ["callbacks/each=[model_checkpoint,gif]"], tmp_path)  # single ones, on purpose
    assert set(cfg.callbacks) == {"model_checkpoint", "last_checkpoint", "gif"}


@pytest.mark.slow  # the command line: make test-all
def test_help_offers_only_the_real_presets_of_callbacks(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vae_lab.train", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert "callbacks: default, none\n" in done.stdout


def test_default_run_writes_everything_inside_the_run_directory(tmp_path: Path) -> None:
    cfg = compose_config("train", [], tmp_path / "run")
    assert cfg.paths.output_dir == str(tmp_path / "run")
    assert cfg.trainer.default_root_dir == str(tmp_path / "run")
    assert cfg.callbacks.model_checkpoint.dirpath == str(tmp_path / "run" / "checkpoints")
    assert cfg.logger.tensorboard.save_dir == str(tmp_path / "run")


@pytest.mark.parametrize(
    ("experiment", "latent_dim", "batch_size", "max_epochs"),
    [("seed", 50, 100, 100), ("tutorial", 2, 32, 10)],
)
def test_experiment_presets_reproduce_the_published_recipes(
    experiment: str, latent_dim: int, batch_size: int, max_epochs: int, tmp_path: Path
) -> None:
    cfg = compose_config("train", [f"+experiment={experiment}"], tmp_path)
    assert (cfg.model.latent_dim, cfg.data.batch_size, cfg.trainer.max_epochs) == (latent_dim, batch_size, max_epochs)
    assert cfg.model.lr == 1e-4


def test_user_facing_keys_and_any_trainer_argument_override(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        ["model.latent_dim=2", "model.lr=3e-4", "data.batch_size=32", "data.binarize=dynamic", "data.data_dir=/x",
         "seed=7", "trainer.max_epochs=3", "++trainer.limit_train_batches=40", "trainer.accelerator=gpu"],
        tmp_path,
    )
    assert cfg.model.latent_dim == 2 and cfg.model.lr == 3e-4
    assert cfg.data.batch_size == 32 and cfg.data.binarize == "dynamic" and cfg.data.data_dir == "/x"
    assert cfg.seed == 7 and cfg.data.seed == 7
    assert cfg.trainer.max_epochs == 3 and cfg.trainer.limit_train_batches == 40
    assert cfg.trainer.accelerator == "gpu"  # the direct override wins over the accelerator preset


@pytest.mark.parametrize("config_name", ["train", "eval", "sample"])
def test_mnist_has_one_home_whatever_the_working_directory(config_name, tmp_path: Path, monkeypatch) -> None:
    # Started from another folder, or with hydra.job.chdir=true, a run used to build a 53 MB MNIST copy there.
    monkeypatch.delenv("VAE_LAB_DATA_DIR", raising=False)
    homes = set()
    for folder in (tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
        monkeypatch.chdir(folder)
        cfg = compose_config(config_name, ["hydra.job.chdir=true"], folder / "run")
        homes.add(Path(cfg.paths.data_dir).expanduser())
    assert homes == {Path.home() / ".cache" / "vae_lab" / "data"}
    monkeypatch.setenv("VAE_LAB_DATA_DIR", str(tmp_path / "mine"))
    assert compose_config(config_name, [], tmp_path / "run").paths.data_dir == str(tmp_path / "mine")
