"""Checks before any work: a command line before Hydra makes a run directory, and what this machine can do.

`@hydra.main` creates `outputs/<date>/<time>/` before the task runs, and composition errors happen before any Hydra
callback and are reported over several lines. So `run` composes the same config first, with Hydra's compose API (a
sweep: once per swept value), and checks a training job (`check_run`): a problem is `error: <one sentence>`, exit
code 2 and nothing created (`HYDRA_FULL_ERROR=1` re-raises, for the full trace). `evaluate` and `sample` create no
folder: they check their values as they start.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vae_lab.config_checks import build, check_config
from vae_lab.errors import USAGE_EXIT, ConfigError, VaeLabError, print_error

# Hydra flags that print something and exit without running the task.
PRINTS = ("help", "hydra_help", "info", "cfg", "shell_completion", "experimental_rerun")


def run(hydra_main: Callable[[], object], config_dir: Path, config_name: str, settings: type | None = None) -> None:
    """Check `sys.argv` as Hydra will read it (a training job against its `settings`), then call `hydra_main`."""
    try:
        if not config_dir.is_dir():
            raise VaeLabError(
                f"vae_lab's configs are not where it looks for them ({config_dir}): reinstall vae_lab "
                "(`pip install .` ships them inside the package)."
            )
        # Rewritten in place (resume=X): Lightning's DDP launcher re-runs sys.argv for the other ranks.
        sys.argv[1:] = check_command_line(sys.argv[1:], config_dir, config_name, settings)
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


def check_command_line(argv: list[str], config_dir: Path, config_name: str, settings: type | None = None
                       ) -> list[str]:
    """Compose every job the command line describes and, given `settings`, check it; raise on the first problem.
    Return the command line, with a `resume=<run dir>` rewritten into Hydra's own arguments (`resume.py`)."""
    from hydra import compose, initialize_config_dir

    args = parse(argv)
    runs = not any(getattr(args, flag) for flag in PRINTS)
    if runs and any(arg.startswith("resume=") for arg in args.overrides):
        from vae_lab.resume import resume_arguments

        argv = resume_arguments(argv)
        args = parse(argv)
    if args.multirun and not runs and not args.shell_completion:
        raise VaeLabError("-m (--multirun) cannot be combined with --help, --cfg or --info; drop -m and give one "
                          "value per key to print that job's config.")
    # `--help` and `--cfg job` too: a misspelt key gets the same sentence as in a run (Hydra's answer: a traceback).
    if args.config_dir or args.shell_completion:  # configs from elsewhere; words that are not overrides
        return argv
    if args.config_path:
        config_dir = Path(args.config_path) if os.path.isabs(args.config_path) else config_dir / args.config_path
    for overrides in job_overrides(args.overrides, args.multirun):
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=args.config_name or config_name, overrides=overrides)
        if settings is not None:
            check_run(cfg, settings, runs, args.multirun)
    return argv


def check_run(cfg: DictConfig, settings: type, runs: bool = True, multirun: bool = False) -> None:
    """A training job's values and, if it is to run, what its checkpoints and this machine allow (once per job)."""
    check_config(cfg, settings)
    if not runs:  # printing a config asks for no hardware
        return
    if "_target_" in (cfg.get("model") or {}):
        from vae_lab.checkpoints import check_continues, warm_start

        model = build(cfg.model, "model")  # small; its own rules across values (objective and k) run here too
        if cfg.get("warm_start_from"):
            warm_start(model, Path(cfg.warm_start_from).expanduser())
        if cfg.get("ckpt_path"):
            check_continues(model, Path(cfg.ckpt_path).expanduser())
    if not multirun:  # a sweep's jobs may run on other machines (SLURM): checked there, by set_threads
        check_threads(cfg.get("threads"))
    check_memory(cfg)  # a size the kernel would kill the process for
    check_device("trainer.accelerator", str(OmegaConf.select(cfg, "trainer.accelerator", default="auto")))


# Peak RSS of a CPU training process, fp32: ~1.1 GB, plus ~0.46 MB per image of a training batch (measured: 2.48 GB
# at batch 3,000, 3.86 GB at 6,000; the default batch of 100 needs ~1.2 GB).
BASE_BYTES, BYTES_PER_BATCH_IMAGE = 1.1e9, 0.46e6
# Decoding images at once (prior samples, the latent manifold's grid): ~0.24 MB per image on the CPU (measured:
# `python -m vae_lab.sample n=100000` reached 24 GB before the kernel's OOM killer ended it).
BYTES_PER_DECODED_IMAGE = 0.24e6
# Every size a user can type that allocates in proportion: config key -> (images it makes at once are the value to
# this power, bytes per image). `n`: vae_lab.sample; `batch_size`, `decode_batch`: vae_lab.evaluate.
SIZES = {"data.batch_size": (1, BYTES_PER_BATCH_IMAGE), "n": (1, BYTES_PER_DECODED_IMAGE),
         "callbacks.sample_grid.num_samples": (1, BYTES_PER_DECODED_IMAGE),
         "callbacks.latent_manifold.grid_size": (2, BYTES_PER_DECODED_IMAGE),
         "batch_size": (1, BYTES_PER_DECODED_IMAGE), "decode_batch": (1, BYTES_PER_DECODED_IMAGE)}


def check_device(key: str, name: str) -> str:
    """The torch device `key=name` asks for (auto: a GPU if torch finds one); a GPU this machine lacks is refused."""
    import torch

    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        also = " (or accelerator=cpu / accelerator=auto)" if key == "trainer.accelerator" else ""
        raise ConfigError(f"{key}={name} needs a CUDA GPU, but torch finds none on this machine; use {key}=cpu{also}.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}=mps needs Apple's MPS backend, which this machine lacks; use {key}=cpu.")
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, as under SLURM or taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    cores = usable_cpus()
    if threads is not None and threads > cores:
        raise ConfigError(f"threads={threads} is more than the {cores} CPU cores this process may use; use null "
                          f"(torch's default) or a number from 1 to {cores}.")


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for this process (`threads=`; null keeps torch's default), at most its cores."""
    check_threads(threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """The kernel's MemAvailable (Linux), or None where it cannot be read."""
    try:
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024.0


def check_memory(cfg: DictConfig, available: float | None = None) -> None:
    """Refuse the size setting of `cfg` that needs the most memory if its tensors would not fit on the CPU (the
    kernel's OOM killer would end the process, or someone else's on a shared machine); a GPU has its own memory."""
    devices = (cfg.get("trainer") or {}).get("devices")
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    sizes = [(processes * (BASE_BYTES + value**power * per_image), key, value, per_image)
             for key, (power, per_image) in SIZES.items()
             if isinstance(value := OmegaConf.select(cfg, key, default=None), int) and not isinstance(value, bool)]
    available = available_memory_bytes() if available is None else available
    if not sizes or available is None or max(sizes)[0] <= available:
        return
    device = str(cfg.get("device", (cfg.get("trainer") or {}).get("accelerator", "auto")))
    if device != "cpu" and (device != "auto" or check_device("device", "auto") != "cpu"):
        return
    needed, key, value, per_image = max(sizes)
    each = f", in each of {processes} processes" if processes > 1 else ""
    raise ConfigError(
        f"{key}={value} needs about {needed / 1e9:.0f} GB of memory on the CPU (estimated: {BASE_BYTES / 1e9:.1f} GB + "
        f"{per_image / 1e6:.2f} MB per image made at once{each}), more than the {available / 1e9:.0f} GB available; "
        "use a smaller value (its default fits easily)."
    )


def job_overrides(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists to compose: one, or for a sweep one per swept value (other sweeps at their first).

    Checking each value once, not every combination, finds every bad value in a handful of compositions.
    Interval sweeps (an Optuna search space) have no values to list and are left to the sweeper.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices: list[list[str]] = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if not override.is_sweep_override():
            choices.append([override.input_line])
        elif not multirun:
            raise VaeLabError(f"Ambiguous value for argument '{override.input_line}': to sweep over its values, add "
                              "-m (--multirun).")
        elif override.is_discrete_sweep():
            choices.append([f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()])
    jobs = [[values[0] for values in choices]]
    for position, values in enumerate(choices):
        jobs += [jobs[0][:position] + [value] + jobs[0][position + 1 :] for value in values[1:]]
    return jobs


def one_sentence(error: Exception, argv: list[str]) -> str:
    """The error as one line: the key, the bad value and what is allowed, from the exception's own fields."""
    if isinstance(error, VaeLabError):
        return str(error)
    if isinstance(error, MissingConfigException) and error.options and "/" in (error.missing_cfg_file or ""):
        group, name = error.missing_cfg_file.rsplit("/", 1)
        return f"{group}={name} is not a preset of {group}; use one of {', '.join(error.options)}."
    if isinstance(error, OverrideParseException):
        return f"could not read the override {error.override!r} ({_first_line(error.message)}); see `--help`."
    key, parent = getattr(error.__cause__, "full_key", None), getattr(error.__cause__, "parent_node", None)
    if key and parent is not None and hasattr(parent, "keys"):  # an override of a key the config does not have
        override = next((arg for arg in argv if f"{arg.split('=', 1)[0].lstrip('+~')}.".startswith(f"{key}.")), key)
        section = key.rsplit(".", 1)[0] if "." in key else "the root config"
        known = ", ".join(name for name in parent.keys() if name != "hydra" and not str(name).startswith("_"))
        return (
            f"{override} sets an unknown key {key} ({section} has: {known}); fix the spelling, "
            f"or write +{override.lstrip('+~')} to add a new key on purpose."
        )
    return _first_line(str(error)).rstrip(".") + "."


def _first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), message)
