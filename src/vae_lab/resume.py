"""Resume an interrupted run in place: `python -m vae_lab.train resume=outputs/<date>/<time>`.

`resume_arguments` rewrites that one argument into Hydra's own: the run's saved `.hydra/config.yaml` becomes the
primary config, the run directory stays the run directory (`.hydra/` is left as the first start wrote it) and
`ckpt_path` points at its `checkpoints/last.ckpt`, so `trainer.fit` restores the weights, optimizer, loops and
every callback's state (e.g. the fixed sample vector). Further overrides apply on top, for this resume only.
The TensorBoard curves continue without doubled epochs thanks to `resumed_curves.PurgeUnsavedEvents`. Kept
free of torch and Lightning imports: a wrong path must be reported in a second.
"""

from __future__ import annotations

from pathlib import Path

from vae_lab.errors import VaeLabError

CHECKPOINT = Path("checkpoints") / "last.ckpt"
SAVED_CONFIG = Path(".hydra") / "config.yaml"


def find_run(target: str) -> tuple[Path, Path]:
    """(run directory, checkpoint) for `resume=<run dir>` or `resume=<run dir>/checkpoints/<file>.ckpt`."""
    path = Path(target).expanduser().resolve()
    if path.is_file():
        run_dir, checkpoint = path.parent.parent, path
    elif path.is_dir():
        run_dir, checkpoint = path, path / CHECKPOINT
    else:
        raise VaeLabError(
            f"resume={target} does not exist; use resume=<run dir> (e.g. outputs/<date>/<time>) or its last.ckpt."
        )
    if not (run_dir / SAVED_CONFIG).is_file():
        raise VaeLabError(
            f"resume={target} is not a vae_lab run: {run_dir / SAVED_CONFIG} is missing; "
            "use a folder that `python -m vae_lab.train` created."
        )
    if not checkpoint.is_file():
        raise VaeLabError(
            f"resume={target} has no {CHECKPOINT} yet (the run stopped before its first epoch ended); "
            "start it again instead."
        )
    return run_dir, checkpoint


def resume_arguments(argv: list[str]) -> list[str]:
    """Replace `resume=X` in a command line by the Hydra arguments that continue run X in place."""
    target = next(arg for arg in argv if arg.startswith("resume="))
    run_dir, checkpoint = find_run(target.split("=", 1)[1])
    rest = [arg for arg in argv if arg != target]
    return [
        f"--config-path={run_dir / SAVED_CONFIG.parent}",
        f"--config-name={SAVED_CONFIG.stem}",
        *rest,
        f'hydra.run.dir="{run_dir}"',
        "hydra.output_subdir=null",  # keep the first start's .hydra/ (config, overrides) as written
        f'ckpt_path="{checkpoint}"',
    ]
