"""One set of rules for every user-facing config value: its type and range, and what to write instead.

Hydra's struct mode already rejects unknown keys and presets when it composes the config (`preflight.py`
turns those errors into one sentence); these rules add types and ranges on top. The same rules serve the
command line (`validate_config`, run on the composed config before Hydra makes a run directory) and Python
callers (`check_values`, called by the constructors of `CVAE`, `BinarizedMNIST` and the image callbacks;
`validate_config`, called by `evaluate(cfg)` and `sample(cfg)`), so a value is judged the same way wherever it
comes from. Kept free of torch and Lightning imports: it runs before them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vae_lab.errors import VaeLabError

BINARIZE_MODES = ("static", "dynamic")
KL_ESTIMATORS = ("mc", "analytic")  # the ELBO's KL term: single-sample estimate (the tutorial's) or exact
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile modes; reduce-overhead = CUDA graphs
TRAIN_SIZE = 60_000  # images in MNIST's official training set
TEST_SIZE = 10_000  # and in its test set
GIF_PACINGS = ("tutorial", "every")  # the tutorial's thinning of frames, or every grid
# What lightning.Trainer(precision=...) accepts (Lightning 2.x), as written in a config or on the command line,
# except 64-bit: Lightning makes the weights float64 but the images and the callbacks' latent vectors stay float32.
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16", "bf16-true", "16-true",
              "transformer-engine", "transformer-engine-float16")
# Trainer arguments of Lightning 1.x that users still type, and the 2.x argument that replaced them.
RENAMED_TRAINER_KEYS = {"gpus": "devices", "tpu_cores": "devices", "ipus": "devices", "auto_select_gpus": "devices",
                        "resume_from_checkpoint": "ckpt_path", "weights_save_path": "default_root_dir"}
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
MAX_SEED = 2**32 - 1  # numpy's seed range, which lightning.seed_everything enforces


@dataclass(frozen=True)
class Rule:
    accepts: Callable[[object], bool]
    allowed: str  # completes the sentence "use ..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(example: int) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= 1, f"a positive integer like {example}")


def one_of(choices: tuple[str, ...]) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(choices))


def _is_devices(value: object) -> bool:
    if value == "auto" or (_is_int(value) and (value >= 1 or value == -1)):
        return True
    return OmegaConf.is_list(value) or isinstance(value, list)


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")
BATCH_LIMIT = Rule(  # Lightning's rule: a count, a fraction of the batches, or a whole float taken as a count
    lambda v: v is None or (_is_int(v) and v >= 0)
    or (isinstance(v, float) and (0 <= v <= 1 or (v > 1 and v.is_integer()))),
    "a number of batches (an integer, 0 or more) or a fraction of them from 0.0 to 1.0",
)


def _is_index_pair(value: object) -> bool:
    pair = list(value) if hasattr(value, "__len__") and not isinstance(value, str) else None
    return pair is not None and len(pair) == 2 and all(_is_int(i) and 0 <= i < TEST_SIZE for i in pair)


def _is_not_a_file(value: object) -> bool:
    return value is None or (isinstance(value, (str, os.PathLike)) and not Path(value).is_file())


RULES: dict[str, Rule] = {
    "seed": Rule(lambda v: _is_int(v) and 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}"),
    "trainer.max_epochs": Rule(
        lambda v: v is None or (_is_int(v) and (v >= 1 or v == -1)),
        "a positive integer like 10, -1 for no limit, or null (Lightning's default)",
    ),
    "trainer.accelerator": Rule(lambda v: v in ACCELERATORS, "one of " + ", ".join(ACCELERATORS)),
    "trainer.devices": Rule(_is_devices, "a positive integer, -1 (all), auto, or a list of device ids"),
    "trainer.num_nodes": positive_int(1),
    "trainer.precision": Rule(lambda v: v is None or str(v) in PRECISIONS,
                              "null (32-true) or one of " + ", ".join(PRECISIONS)
                              + " (not 64-true: vae_lab's models and data are float32)"),
    "trainer.limit_train_batches": Rule(  # 0 would train nothing and end `completed` with no metrics
        lambda v: v is None or (BATCH_LIMIT.accepts(v) and v > 0),
        "a number of batches (an integer, 1 or more) or a fraction of them above 0.0 up to 1.0 (0 trains nothing)",
    ),
    "trainer.limit_val_batches": BATCH_LIMIT,
    "trainer.limit_test_batches": BATCH_LIMIT,
    "trainer.check_val_every_n_epoch": Rule(lambda v: v is None or (_is_int(v) and v >= 1),
                                            "a positive integer like 1, or null"),
    "trainer.log_every_n_steps": Rule(lambda v: v is None or (_is_int(v) and v >= 0),
                                      "null (50), 0 (no step logging) or a positive integer like 50"),
    "trainer.accumulate_grad_batches": positive_int(1),
    "trainer.gradient_clip_val": Rule(lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "callbacks.gif.pacing": one_of(GIF_PACINGS),
    "callbacks.gif.frame_ms": positive_int(100),
    "callbacks.sample_grid.num_samples": positive_int(16),
    "callbacks.sample_grid.nrow": positive_int(4),
    "callbacks.sample_grid.every_n_epochs": positive_int(1),
    "callbacks.reconstructions.num_images": positive_int(8),
    "callbacks.reconstructions.every_n_epochs": positive_int(1),
    "callbacks.latent_manifold.grid_size": positive_int(20),
    "callbacks.latent_manifold.num_points": positive_int(1000),
    "callbacks.latent_manifold.every_n_epochs": positive_int(1),
    # python -m vae_lab.evaluate (conf/eval.yaml) and python -m vae_lab.sample (conf/sample.yaml)
    "iwae_samples": positive_int(5000),
    "num_images": Rule(lambda v: v is None or (_is_int(v) and 1 <= v <= TEST_SIZE),
                       f"null (all {TEST_SIZE} test images) or a number from 1 to {TEST_SIZE}"),
    "batch_size": positive_int(100),
    "decode_batch": positive_int(100),
    "precision": Rule(lambda v: v in (32, "32", "bf16"),
                      "32 (float32, the default) or bf16 (the decoder in bfloat16: faster on CPUs with AMX or "
                      "AVX-512 BF16, biased by a few hundredths of a nat, README \"Performance\")"),
    "device": Rule(lambda v: v in ("auto", "cpu", "cuda"), "auto, cpu or cuda"),
    "n": positive_int(64),
    "steps": Rule(lambda v: _is_int(v) and v >= 2, "an integer of 2 or more like 10 (both ends are included)"),
    "binary": BOOLEAN,
    "interpolate": Rule(lambda v: v is None or _is_index_pair(v),
                        f"null or two test-image indices from 0 to {TEST_SIZE - 1}, like interpolate=[0,1]"),
    "output_dir": Rule(_is_not_a_file, "null (beside the checkpoint) or a folder, which is created if missing"),
    "threads": Rule(lambda v: v is None or (_is_int(v) and v >= 1), "null (torch's default) or a positive integer"),
}

_ABSENT = object()


def check(key: str, value: object) -> None:
    """Raise `VaeLabError` in one sentence if `value` breaks the rule for `key` (every key checked has a rule)."""
    rule = RULES.get(key)
    if rule is None:
        raise KeyError(f"validation.RULES has no rule for {key}")  # a programming error, not a user's
    if not rule.accepts(value):
        raise VaeLabError(f"{key}={value!r} is not allowed; use {rule.allowed}.")


def check_values(section: str, **values: object) -> None:
    """Check constructor arguments under their config names, e.g. `check_values("model", latent_dim=0)`."""
    for name, value in values.items():
        check(f"{section}.{name}", value)


def validate_config(cfg: DictConfig) -> None:
    """Check every ruled key present in a composed config, and `model`, `data`, `callbacks`, `logger` against the
    typed signatures of their `_target_`s (`config_checks`); raise `VaeLabError` naming the first bad one."""
    from vae_lab.config_checks import check_config, check_node

    check_config(OmegaConf.masked_copy(cfg, [key for key in ("model", "data", "callbacks", "logger") if key in cfg]))
    trainer = cfg.get("trainer")
    if OmegaConf.is_dict(trainer) and "_target_" in trainer:  # names only (e.g. a key added with +/++): values below
        check_node("trainer", trainer, values=False, renamed=RENAMED_TRAINER_KEYS)
    for key in RULES:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT:
            check(key, value)
    if cfg.get("resume"):  # the command line turns resume=X into the run's own config; train() never sees it
        raise VaeLabError(
            f"resume={cfg.resume} works on the command line only (python -m vae_lab.train resume=<run dir>); "
            "from Python, compose the run's .hydra/config.yaml and set ckpt_path to its checkpoints/last.ckpt."
        )
