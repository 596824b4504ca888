"""Resume an interrupted run in place: `python -m vae_lab.train resume=outputs/<date>/<time>`.

(A sweep folder, `resume=multirun/<date>/<time>`, continues the whole sweep: `sweep_resume.py`.)

`resume_arguments` rewrites that one argument into Hydra's own: the run's saved `.hydra/config.yaml` becomes the
primary config, the run directory stays the run directory (`.hydra/` is left as the first start wrote it) and
`ckpt_path` points at its `checkpoints/last.ckpt`, so `trainer.fit` restores the weights, optimizer, loops and
every callback's state (e.g. the fixed sample vector). Further overrides apply on top, for this resume only,
except `trainer.max_epochs`: without one, the run continues to the epoch count its latest start aimed for (as
`manifest.json` recorded it), so a run extended by one resume and killed is finished by the next. A resume with
nothing left to train, or one that would change the size of the saved weights, is refused in one sentence
before anything is written. The TensorBoard curves continue without doubled epochs thanks to
`resumed_curves.PurgeUnsavedEvents`. A wrong path is reported before torch is imported (to read the checkpoint).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vae_lab import CONFIG_DIR
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
        callbacks = OmegaConf.load(run_dir / SAVED_CONFIG).get("callbacks") or {}
        if not {"model_checkpoint", "last_checkpoint"} & set(callbacks):
            raise VaeLabError(
                f"resume={target} cannot be resumed: the run kept no checkpoints (its config has no "
                "callbacks.last_checkpoint); start a new run, with the default callbacks to be able to resume it."
            )
        raise VaeLabError(
            f"resume={target} has no {CHECKPOINT} yet (the run stopped before its first epoch ended); "
            "start it again instead."
        )
    return run_dir, checkpoint


def override_value(argv: list[str], key: str) -> str | None:
    """The value the command line gives `key` (`key=v`, `+key=v` or `++key=v`; the last one wins), or None."""
    pattern = re.compile(rf"^\+{{0,2}}{re.escape(key)}=(.*)$")
    values = [match.group(1) for arg in argv if (match := pattern.match(arg))]
    return values[-1] if values else None


def planned_max_epochs(run_dir: Path) -> int | None:
    """`trainer.max_epochs` of the run's latest start: its last `manifest.json` entry, else the saved config."""
    from vae_lab.callbacks.manifest import MANIFEST

    manifest = run_dir / MANIFEST
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        latest = (record.get("resumes") or [record])[-1]
        return latest.get("config", {}).get("trainer", {}).get("max_epochs")
    return OmegaConf.load(run_dir / SAVED_CONFIG).get("trainer", {}).get("max_epochs")


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """Epochs the checkpoint has finished (Lightning saves `last.ckpt` after an epoch's validation)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress.get("processed", checkpoint.get("epoch", -1) + 1))


def check_resume(target: str, checkpoint: dict[str, Any], argv: list[str], max_epochs: int | None) -> None:
    """Refuse a resume that has nothing to train or that changes the shape of the saved weights."""
    latent_dim = override_value(argv, "model.latent_dim")
    saved_latent_dim = (checkpoint.get("hyper_parameters") or {}).get("latent_dim")
    if latent_dim is not None and saved_latent_dim is not None and latent_dim.strip() != str(saved_latent_dim):
        raise VaeLabError(
            f"resume={target} cannot change model.latent_dim to {latent_dim}: the run's weights have latent_dim="
            f"{saved_latent_dim}; start a new run (without resume=) for another latent size."
        )
    done = epochs_done(checkpoint)
    if isinstance(max_epochs, int) and max_epochs >= 0 and done >= max_epochs:
        raise VaeLabError(
            f"resume={target} has nothing to train: the run has finished {done} epoch{'' if done == 1 else 's'} and "
            f"trainer.max_epochs is {max_epochs}; add trainer.max_epochs=N with N > {done} to train it further."
        )


def read_intact(target: str, checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's dictionary; if it is corrupt, one sentence naming the newest intact one to resume from."""
    from vae_lab.checkpoints import CorruptCheckpoint, read_checkpoint_dict

    try:
        return read_checkpoint_dict(checkpoint, "resume")
    except CorruptCheckpoint as error:
        damaged = f"resume={target}: {checkpoint} is corrupt (truncated or damaged; torch.load cannot read it)"
        for other in sorted(checkpoint.parent.glob("*.ckpt"), key=lambda path: path.stat().st_mtime, reverse=True):
            try:
                epochs = epochs_done(read_checkpoint_dict(other, "resume")) if other != checkpoint else None
            except VaeLabError:
                continue
            if epochs is not None:
                done = f"{epochs} epoch{'' if epochs == 1 else 's'} done"
                raise VaeLabError(f"{damaged}; the newest intact checkpoint of the run is {other} ({done}): "
                                  f"continue from it with resume={other}.") from error
        raise VaeLabError(f"{damaged}, and no intact checkpoint is left beside it; start the run anew.") from error


def resume_arguments(argv: list[str]) -> list[str]:
    """Replace `resume=X` in a command line by the Hydra arguments that continue run X in place."""
    argument = next(arg for arg in argv if arg.startswith("resume="))
    target = argument.split("=", 1)[1]
    if len(target) > 1 and target[0] == target[-1] and target[0] in "'\"":  # quoted as for Hydra: resume='a b'
        target = target[1:-1]
    rest = [arg for arg in argv if arg != argument]
    from vae_lab.sweep_resume import is_sweep, sweep_arguments

    if is_sweep(Path(target).expanduser().resolve()):
        return sweep_arguments(Path(target).expanduser().resolve(), target, rest)
    if {"-m", "--multirun"} & set(rest):
        raise VaeLabError(f"resume={target} continues one run, not a sweep (it has no multirun.yaml); drop -m.")
    run_dir, checkpoint = find_run(target)
    requested = override_value(rest, "trainer.max_epochs")
    if requested is None:
        planned = planned_max_epochs(run_dir)
        rest += [] if planned is None else [f"trainer.max_epochs={planned}"]
        max_epochs = planned
    else:
        max_epochs = int(requested) if re.fullmatch(r"-?\d+", requested.strip()) else None  # else: validation says
    check_resume(target, read_intact(target, checkpoint), rest, max_epochs)
    return [
        f"--config-path={run_dir / SAVED_CONFIG.parent}",
        f"--config-name={SAVED_CONFIG.stem}",
        *rest,
        f'hydra.run.dir="{run_dir}"',
        "hydra.output_subdir=null",  # keep the first start's .hydra/ (config, overrides) as written
        # The saved config has no hydra group: vae_lab's job logging (appending to train.log) is chosen again.
        f'hydra.searchpath=["file://{CONFIG_DIR}"]',
        "hydra/job_logging=vae_lab",
        "++warm_start_from=null",  # a warm-started run's source: used once, at its first start (it may be gone since)
        f'++ckpt_path="{checkpoint}"',
    ]
