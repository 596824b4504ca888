"""Check a command line before Hydra makes a run directory, and report any problem in one sentence.

`@hydra.main` creates `outputs/<date>/<time>/.hydra/` before the task function runs, so a typo would leave a
folder that looks like a real run, and Hydra reports composition errors over several lines. `run(hydra_main)`
first composes the same config with Hydra's compose API (for a sweep: once per swept value), applies
`config_checks.check_config` (with the entry point's own settings, `SETTINGS`), and on any problem prints
`error: <one sentence>` and exits with `USAGE_EXIT` having created nothing. `HYDRA_FULL_ERROR=1` re-raises
instead, for the full trace.
A `resume=<run dir>` argument is first rewritten into Hydra's own arguments (`resume.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vae_lab.accelerators import HARDWARE_NAMES, check_accelerator, check_memory, check_threads, pick_device
from vae_lab.config_checks import check_config
from vae_lab.errors import USAGE_EXIT, VaeLabError, print_error

# Each entry point's own keys and their rules, beside the entry point (imported when a command line is checked).
SETTINGS = {"train": "vae_lab.train.TrainSettings", "eval": "vae_lab.evaluate.EvaluateSettings",
            "sample": "vae_lab.sample.SampleSettings"}
# Hydra flags that print something and exit without running the task: nothing to check.
_INFO_FLAGS = ("help", "hydra_help", "info", "cfg", "shell_completion", "experimental_rerun")


def run(hydra_main: Callable[[], object], config_dir: Path, config_name: str) -> None:
    """Check `sys.argv` as Hydra will read it, then hand over to `hydra_main` (a `@hydra.main` function)."""
    try:
        if not config_dir.is_dir():
            raise VaeLabError(
                f"vae_lab's configs are not where it looks for them ({config_dir}): reinstall vae_lab "
                "(`pip install .` ships them inside the package)."
            )
        if runs_a_job(sys.argv[1:]) and any(arg.startswith("resume=") for arg in sys.argv[1:]):
            from vae_lab.resume import resume_arguments

            # Rewritten in place: Lightning's DDP launcher re-runs sys.argv for the other ranks.
            sys.argv[1:] = resume_arguments(sys.argv[1:])
        check_command_line(sys.argv[1:], config_dir, config_name)
    except (HydraException, OmegaConfBaseException, VaeLabError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print_error(one_sentence(error, sys.argv[1:]))
        sys.exit(USAGE_EXIT)
    hydra_main()


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line as `@hydra.main` reads it: Hydra's documented flags (`--help` lists them) and overrides."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("overrides", nargs="*")
    for flag, short in (("help", "-h"), ("hydra-help", None), ("version", None), ("resolve", None),
                        ("run", "-r"), ("multirun", "-m"), ("shell-completion", "-sc")):
        parser.add_argument(*filter(None, (f"--{flag}", short)), action="store_true")
    for flag, short in (("cfg", "-c"), ("package", "-p"), ("config-path", "-cp"), ("config-name", "-cn"),
                        ("config-dir", "-cd"), ("experimental-rerun", None)):
        parser.add_argument(*filter(None, (f"--{flag}", short)))
    parser.add_argument("--info", "-i", nargs="?", const="all")
    return parser.parse_args(argv)


def runs_a_job(argv: list[str]) -> bool:
    """False for `--help`, `--cfg job` and the like, which only print (`resume=X` then composes as a plain key)."""
    args = parse(argv)
    return not any(getattr(args, flag, None) for flag in _INFO_FLAGS)


def check_command_line(argv: list[str], config_dir: Path, config_name: str) -> None:
    """Compose and validate every job the command line describes; raise on the first problem."""
    from hydra import compose, initialize_config_dir

    args = parse(argv)
    if args.multirun and any(getattr(args, flag, None) for flag in _INFO_FLAGS if flag != "shell_completion"):
        raise VaeLabError("-m (--multirun) cannot be combined with --help, --cfg or --info; drop -m and give one "
                          "value per key to print that job's config.")
    runs = runs_a_job(argv)
    # `--help` and `--cfg job` compose the same config to print it: a misspelt key or bad value there gets the same
    # sentence (Hydra's own answer is a traceback). A resume=X among them is just a key: nothing to check.
    prints_config = args.help or args.cfg  # shell completion and the like take other words than overrides
    if args.config_dir or (not runs and (not prints_config or any(a.startswith("resume=") for a in args.overrides))):
        return
    if args.config_path:
        config_dir = Path(args.config_path) if os.path.isabs(args.config_path) else config_dir / args.config_path
    from hydra.utils import get_class

    settings = get_class(SETTINGS[config_name]) if config_name in SETTINGS else None
    for overrides in job_overrides(args.overrides, args.multirun):
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=args.config_name or config_name, overrides=overrides)
        check_config(cfg, settings)
        if runs and OmegaConf.is_dict(cfg.get("model")) and "_target_" in cfg.model:
            from vae_lab.checkpoints import check_continues, warm_start
            from vae_lab.config_checks import build

            model = build(cfg.model)  # small; its own rules across values (objective and k) run before any run dir
            if cfg.get("warm_start_from"):
                warm_start(model, Path(cfg.warm_start_from).expanduser())
            if cfg.get("ckpt_path"):
                check_continues(model, Path(cfg.ckpt_path).expanduser())
        if runs and not args.multirun:  # a sweep's jobs may run on other machines (SLURM): checked there
            check_threads(cfg.get("threads"))
        if runs:
            check_memory(cfg)  # a size the kernel would kill the process for: before any run dir or work
        if runs and cfg.get("device") == "cuda":  # evaluate/sample asked for a GPU
            pick_device("cuda")
        if runs and str(cfg.get("trainer", {}).get("accelerator")) in HARDWARE_NAMES:  # asks torch when it matters
            check_accelerator(cfg.trainer)  # a GPU asked for on a machine without one: also before any run dir


def job_overrides(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists to compose: one, or for a sweep one per swept value (other sweeps at their first).

    Checking each value once, not every combination, finds every bad value in a handful of compositions.
    Interval sweeps (an Optuna search space) have no values to list and are left to the sweeper.
    """
    if not multirun:
        return [overrides]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices: list[list[str]] = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices.append([f"{key}={override.get_value_element_as_str()}"])
        elif override.is_discrete_sweep():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    first = [values[0] for values in choices]
    jobs = [first]
    for position, values in enumerate(choices):
        jobs += [first[:position] + [value] + first[position + 1 :] for value in values[1:]]
    return jobs


def one_sentence(error: Exception, argv: list[str]) -> str:
    """The error as one line: the key, the bad value and what is allowed, when Hydra's exception tells them."""
    if isinstance(error, VaeLabError):
        return str(error)
    if isinstance(error, MissingConfigException) and error.options and "/" in (error.missing_cfg_file or ""):
        group, name = error.missing_cfg_file.rsplit("/", 1)
        return f"{group}={name} is not a preset of {group}; use one of {', '.join(error.options)}."
    if "Ambiguous value for argument" in str(error):  # a sweep's comma list without -m
        return f"{_first_line(str(error)).rstrip('.')}: to sweep over its values, add -m (--multirun)."
    if isinstance(error, OverrideParseException):
        return f"could not read the override {error.override!r} ({_first_line(error.message)}); see `--help`."
    cause = error.__cause__
    key = getattr(cause, "full_key", None)
    parent = getattr(cause, "parent_node", None)
    if key and parent is not None and hasattr(parent, "keys"):
        override = next((arg for arg in argv if _override_key(arg) in (key, *_prefixes(arg))), key)
        section = key.rsplit(".", 1)[0] if "." in key else "the root config"
        known = ", ".join(name for name in parent.keys() if name != "hydra" and not str(name).startswith("_"))
        return (
            f"{override} sets an unknown key {key} ({section} has: {known}); fix the spelling, "
            f"or write +{override.lstrip('+~')} to add a new key on purpose."
        )
    return _first_line(str(error)).rstrip(".") + "."


def _override_key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def _prefixes(arg: str) -> list[str]:
    parts = _override_key(arg).split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), message)
