"""vae_lab: train, sweep, watch and evaluate variational autoencoders on images (import-light: no torch here)."""
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"
CONFIG_DIR = Path(__file__).resolve().parent / "conf"  # shipped with the package; the repo's conf/ links here


def run_dir(resume: str | None, new: str) -> str:
    """`hydra.run.dir` (conf/hydra/default.yaml): the run `resume=` names (a folder or its checkpoint), else `new`.
    Also the run folder of a checkpoint for evaluate and sample (`<run>/checkpoints/x.ckpt` -> `<run>`)."""
    if not resume:
        return new
    path = Path(resume).expanduser().resolve()
    return str(path.parents[int(path.parent.name == "checkpoints")] if path.suffix == ".ckpt" else path)


# Registered on import, so that composing conf/train.yaml from Python (hydra.compose) resolves hydra.run.dir too.
OmegaConf.register_new_resolver("vae_lab.run_dir", run_dir, replace=True)
OmegaConf.register_new_resolver("vae_lab.output_subdir", lambda resume: None if resume else ".hydra", replace=True)
