"""Bad config values and overrides fail before any work: one sentence, non-zero exit, no run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest

from tests.conftest import CONF_DIR, compose_config
from vae_lab.config_checks import check_arguments, check_config, positive
from vae_lab.errors import USAGE_EXIT, VaeLabError
from vae_lab.preflight import check_command_line, job_overrides, one_sentence
from vae_lab.train import TrainSettings

MODEL_KEYS = ["latent_dim", "lr", "objective", "k", "beta", "kl"]  # cvae.yaml's and the objective group's
# The eight bad inputs and the exact sentence each must produce.
BAD_INPUTS = {
    "model.latent_dim=0": "model.latent_dim=0 is not allowed; use a positive integer like 50.",
    "model.latent_dim=abc": "model.latent_dim='abc' is not allowed; use a positive integer like 50.",
    "data.batch_size=-5": "data.batch_size=-5 is not allowed; use a positive integer like 100.",
    "model.lr=0": "model.lr=0 is not allowed; use a positive number like 0.0001.",
    "trainer.max_epochs=-2": (
        "trainer.max_epochs=-2 is not allowed; use a positive integer like 10, -1 for no limit, or null (Lightning's "
        "default)."
    ),
    "model.latnt_dim=2": (
        f"model.latnt_dim=2 sets an unknown key model.latnt_dim (model has: {', '.join(MODEL_KEYS)}); "
        "fix the spelling, or write +model.latnt_dim=2 to add a new key on purpose."
    ),
    "accelerator=tpu9": "accelerator=tpu9 is not a preset of accelerator; use one of auto, cpu, ddp, gpu.",
    "data.binarize=maybe": "data.binarize='maybe' is not allowed; use one of static, dynamic.",
}


def sentence_for(argv: list[str]) -> str | None:
    try:
        check_command_line(argv, CONF_DIR, "train", TrainSettings)
    except Exception as error:  # what preflight.run catches, turned into its one sentence
        return one_sentence(error, argv)
    return None


@pytest.mark.parametrize("override", list(BAD_INPUTS))
def test_each_bad_input_gives_its_one_sentence(override: str) -> None:
    assert sentence_for([override]) == BAD_INPUTS[override]


def test_good_command_lines_pass() -> None:
    good = ["model.latent_dim=2", "experiment=tutorial", "accelerator=cpu", "trainer.max_epochs=-1"]
    assert sentence_for(good) is None
    assert sentence_for(["--help"]) is None  # the default config composes
    assert sentence_for(["--cfg", "job", "trainer.accelerator=gpu"]) is None  # printing asks for no hardware


def test_printing_the_config_checks_it_like_a_run() -> None:
    assert sentence_for(["--cfg", "job", "model.latnt_dim=2"]) == BAD_INPUTS["model.latnt_dim=2"]
    assert sentence_for(["--help", "model.latent_dim=0"]) == BAD_INPUTS["model.latent_dim=0"]


def test_a_sweep_is_checked_value_by_value_before_any_job() -> None:
    assert job_overrides(["model.latent_dim=2,4", "data.batch_size=32,64", "seed=1"], multirun=True) == [
        ["model.latent_dim=2", "data.batch_size=32", "seed=1"],
        ["model.latent_dim=4", "data.batch_size=32", "seed=1"],
        ["model.latent_dim=2", "data.batch_size=64", "seed=1"],
    ]
    assert sentence_for(["-m", "model.latent_dim=2,0"]) == BAD_INPUTS["model.latent_dim=0"]
    assert sentence_for(["-m", "model.latent_dim=2,16", "model.lr=1e-3,3e-4"]) is None


def test_the_same_rules_guard_python_callers(make_train_cfg) -> None:
    from vae_lab.models.cvae import CVAE

    with pytest.raises(VaeLabError, match=r"^model.latent_dim=0 is not allowed; use a positive integer like 50\.$"):
        CVAE(latent_dim=0)
    with pytest.raises(VaeLabError, match=r"^trainer.max_epochs=-2 is not allowed"):
        check_config(make_train_cfg("trainer.max_epochs=-2"))
    CVAE(lr=3e-4)
    with pytest.raises(VaeLabError, match=r"^model.lr=True is not allowed"):
        CVAE(lr=True)


# Options of callbacks and of Lightning's Trainer: refused by the same pre-flight check, not by the callback or the
# Trainer once the run directory exists (which used to cost a half-written run and Hydra's multi-line error).
MORE_BAD_INPUTS = {
    "callbacks.gif.pacing=foo": "callbacks.gif.pacing='foo' is not allowed; use one of tutorial, every.",
    "callbacks.gif.frame_ms=-1": "callbacks.gif.frame_ms=-1 is not allowed; use a positive integer like 100.",
    "callbacks.sample_grid.num_samples=0": (
        "callbacks.sample_grid.num_samples=0 is not allowed; use a positive integer like 16."
    ),
    "callbacks.reconstructions.every_n_epochs=0": (
        "callbacks.reconstructions.every_n_epochs=0 is not allowed; use a positive integer like 1."
    ),
    "trainer.precision=foo": (
        "trainer.precision='foo' is not allowed; use null (32-true) or one of 32-true, 32, bf16-mixed, bf16, "
        "16-mixed, 16, bf16-true, 16-true, transformer-engine, transformer-engine-float16 (not 64-true: vae_lab's "
        "models and data are float32)."
    ),
    "++trainer.limit_train_batches=-1": (
        "trainer.limit_train_batches=-1 is not allowed; use a number of batches (an integer, 1 or more) or a "
        "fraction of them above 0.0 up to 1.0 (0 trains nothing)."
    ),
    "++trainer.limit_train_batches=0": (
        "trainer.limit_train_batches=0 is not allowed; use a number of batches (an integer, 1 or more) or a "
        "fraction of them above 0.0 up to 1.0 (0 trains nothing)."
    ),
    "trainer.precision=64": (
        "trainer.precision=64 is not allowed; use null (32-true) or one of 32-true, 32, bf16-mixed, bf16, "
        "16-mixed, 16, bf16-true, 16-true, transformer-engine, transformer-engine-float16 (not 64-true: vae_lab's "
        "models and data are float32)."
    ),
}
# Keys added to the Trainer with +/++ are checked against lightning.Trainer's signature, with the nearest name.
TRAINER_NAMES = ("accelerator, strategy, devices, num_nodes, precision, logger, callbacks, fast_dev_run, max_epochs, "
                 "min_epochs, max_steps, min_steps, max_time, limit_train_batches")


@pytest.mark.parametrize(
    ("override", "start"),
    [
        ("++trainer.limit_trian_batches=20", "trainer.limit_trian_batches is not a setting of "
         "lightning.pytorch.trainer.trainer.Trainer; did you mean trainer.limit_train_batches? it takes: "),
        ("+trainer.gpus=1", "trainer.gpus is not a setting of lightning.pytorch.trainer.trainer.Trainer; did you "
         "mean trainer.devices? it takes: "),
    ],
)
def test_unknown_trainer_keys_are_refused_with_the_nearest_name_and_no_folder(
    override: str, start: str, tmp_path: Path
) -> None:
    done = run_cli(tmp_path, override)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {start}{TRAINER_NAMES}")
    assert done.stderr.count("\n") == 1 and done.stderr.endswith(".\n")
    assert list(tmp_path.iterdir()) == []  # no run folder


@pytest.mark.parametrize("override", list(MORE_BAD_INPUTS))
def test_callback_and_trainer_options_are_checked_before_the_run(override: str) -> None:
    assert sentence_for([override]) == MORE_BAD_INPUTS[override]


def test_the_image_callbacks_name_their_config_key() -> None:
    from vae_lab.callbacks.latent_manifold import LatentManifold
    from vae_lab.callbacks.reconstructions import Reconstructions

    with pytest.raises(VaeLabError, match=r"^callbacks.reconstructions.every_n_epochs=0 is not allowed"):
        Reconstructions(every_n_epochs=0)
    with pytest.raises(VaeLabError, match=r"^callbacks.latent_manifold.grid_size=0 is not allowed"):
        LatentManifold(grid_size=0)


def test_a_rule_applies_inside_an_optional_and_other_annotation_metadata_is_left_alone() -> None:
    def user_model(width: Annotated[int, positive(8)] | None = None, tag: Annotated[str, "free text"] = "a") -> None:
        pass

    check_arguments(user_model, {"width": None, "tag": "b"}, "model")  # null allowed; a str's own metadata ignored
    with pytest.raises(VaeLabError) as error:
        check_arguments(user_model, {"width": 0}, "model")
    assert str(error.value) == "model.width=0 is not allowed; use null or a positive integer like 8."
    with pytest.raises(VaeLabError) as error:
        check_arguments(user_model, {"tag": 3}, "model")
    assert str(error.value) == "model.tag=3 is not allowed; use a string."


def test_lightning_values_that_are_allowed_pass() -> None:
    good = ["trainer.precision=bf16-mixed", "trainer.precision=32", "++trainer.limit_train_batches=0.25",
            "++trainer.limit_val_batches=0", "callbacks.gif.pacing=every"]
    assert sentence_for(good) is None
    more = ["trainer.precision=16", "trainer.log_every_n_steps=0", "++trainer.limit_test_batches=10.0",
            "trainer.max_epochs=null"]
    assert sentence_for(more) is None
    assert sentence_for(["-sc", "install=bash"]) is None  # shell completion's words are not overrides


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vae_lab.train", *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_prints_one_line_exits_non_zero_and_creates_no_run_dir(tmp_path: Path) -> None:
    for override in ("model.latent_dim=abc", "model.latnt_dim=2"):
        result = run_cli(tmp_path, override)
        assert result.returncode == USAGE_EXIT
        assert result.stderr.splitlines() == [f"error: {BAD_INPUTS[override]}"]
        assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no outputs/<date>/<time>/.hydra left behind


def test_hydra_full_error_shows_the_trace(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "accelerator=tpu9", env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "MissingConfigException" in result.stderr


def test_a_batch_too_large_for_the_memory_is_refused_before_the_run(make_train_cfg) -> None:
    from vae_lab.preflight import check_memory

    with pytest.raises(VaeLabError) as refused:
        check_memory(make_train_cfg("data.batch_size=60000"), available=16e9)
    assert str(refused.value) == (
        "data.batch_size=60000 needs about 29 GB of memory on the CPU (estimated: 1.1 GB + 0.46 MB per image made at "
        "once), more than the 16 GB available; use a smaller value (its default fits easily)."
    )
    with pytest.raises(VaeLabError, match=r"needs about 16 GB .*, in each of 2 processes\), more than the 15 GB"):
        check_memory(make_train_cfg("data.batch_size=15000", "trainer.devices=2"), available=15e9)
    check_memory(make_train_cfg("data.batch_size=15000"), available=16e9)  # fits
    check_memory(make_train_cfg("data.batch_size=60000", "trainer.accelerator=gpu"), available=16e9)  # GPU memory


def test_hydra_flag_mistakes_get_one_sentence_with_the_fix(tmp_path: Path, capsys, monkeypatch) -> None:
    assert sentence_for(["model.latent_dim=2,3"]) == (
        "Ambiguous value for argument 'model.latent_dim=2,3': to sweep over its values, add -m (--multirun)."
    )
    assert sentence_for(["-m", "model.latent_dim=2,3", "--cfg", "job"]) == (
        "-m (--multirun) cannot be combined with --help, --cfg or --info; drop -m and give one value per key to "
        "print that job's config."
    )
    # A non-editable install has no conf/ beside the package: say so instead of Hydra's "directory not found".
    from vae_lab.preflight import run

    monkeypatch.setattr(sys, "argv", ["vae_lab.train"])
    with pytest.raises(SystemExit) as exited:
        run(lambda: None, tmp_path / "conf", "train")
    assert exited.value.code == USAGE_EXIT
    assert capsys.readouterr().err == (
        f"error: vae_lab's configs are not where it looks for them ({tmp_path / 'conf'}): reinstall vae_lab "
        "(`pip install .` ships them inside the package).\n"
    )


@pytest.mark.parametrize(
    ("override", "gigabytes"),
    [("callbacks.latent_manifold.grid_size=1000", 241), ("callbacks.sample_grid.num_samples=1000000", 241)],
)
def test_every_size_setting_of_a_run_is_checked_by_the_one_estimate(make_train_cfg, override, gigabytes) -> None:
    from vae_lab.preflight import check_memory

    with pytest.raises(VaeLabError) as refused:
        check_memory(make_train_cfg(override), available=16e9)
    assert str(refused.value) == (
        f"{override} needs about {gigabytes} GB of memory on the CPU (estimated: 1.1 GB + 0.24 MB per image made at "
        "once), more than the 16 GB available; use a smaller value (its default fits easily)."
    )
    check_memory(make_train_cfg(), available=16e9)  # the defaults fit


def test_a_huge_sample_is_refused_in_one_sentence_before_any_work(tmp_path: Path, tmp_path_factory, monkeypatch
                                                                   ) -> None:
    monkeypatch.setattr("vae_lab.preflight.available_memory_bytes", lambda: 16e9)
    assert sentence_for_sample(["ckpt_path=/nonexistent.ckpt", "n=100000"], tmp_path_factory.mktemp("cfg")) == (
        "n=100000 needs about 25 GB of memory on the CPU (estimated: 1.1 GB + 0.24 MB per image made at once), more "
        "than the 16 GB available; use a smaller value (its default fits easily)."
    )
    done = subprocess.run([sys.executable, "-m", "vae_lab.sample", f"ckpt_path={tmp_path / 'x.ckpt'}", "n=100000000"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: n=100000000 needs about 24001 GB of memory")
    assert done.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("override", "gigabytes"), [("decode_batch=100000", 25), ("batch_size=100000", 25)])
def test_evaluate_batch_sizes_are_checked_by_the_one_estimate(override, gigabytes, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("vae_lab.preflight.available_memory_bytes", lambda: 16e9)
    assert sentence_for_sample(["ckpt_path=/nonexistent.ckpt", override], tmp_path, "eval") == (
        f"{override} needs about {gigabytes} GB of memory on the CPU (estimated: 1.1 GB + 0.24 MB per image made at "
        "once), more than the 16 GB available; use a smaller value (its default fits easily)."
    )
    from vae_lab.preflight import check_memory

    check_memory(compose_config("eval", ["ckpt_path=/nonexistent.ckpt"], tmp_path))  # the defaults fit


def sentence_for_sample(argv: list[str], output_dir: Path, config_name: str = "sample") -> str | None:
    """What evaluate or sample (which check their own values: they make no run folder) say before any work."""
    from vae_lab.evaluate import evaluate
    from vae_lab.sample import sample

    with pytest.raises(VaeLabError) as refused:
        (evaluate if config_name == "eval" else sample)(compose_config(config_name, argv, output_dir))
    return str(refused.value)


@pytest.mark.parametrize("entry_point", ["train", "evaluate", "sample"])
def test_more_threads_than_cores_are_refused_and_every_entry_point_takes_threads(entry_point, tmp_path) -> None:
    from vae_lab.preflight import usable_cpus

    cores = usable_cpus()
    checkpoint = [] if entry_point == "train" else [f"ckpt_path={tmp_path / 'x.ckpt'}"]
    done = subprocess.run([sys.executable, "-m", f"vae_lab.{entry_point}", *checkpoint, "threads=1000"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == (f"error: threads=1000 is more than the {cores} CPU cores this process may use; use null "
                           f"(torch's default) or a number from 1 to {cores}.\n")
    assert list(tmp_path.iterdir()) == []
