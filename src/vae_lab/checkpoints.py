"""Load a trained CVAE from its `.ckpt` file alone, and the test set binarized the way its run did.

The file is read once with `torch.load(weights_only=True)` (tensors and plain values only: a checkpoint
from someone else cannot run code on load), checked, and the model rebuilt from the saved hyper-parameters.
That is what `CVAE.load_from_checkpoint(path, weights_only=True)` does too; we do it by hand because every way a
file can be wrong must become one sentence naming the file and what to pass instead, not a traceback.
"""

from __future__ import annotations

import inspect
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from vae_lab.errors import VaeLabError

if TYPE_CHECKING:
    from torch import Tensor

    from vae_lab.cvae import CVAE

WHAT_TO_PASS = "pass a .ckpt file written by `python -m vae_lab.train`, such as <run dir>/checkpoints/last.ckpt"
# DataModule hyper-parameters that decide which test images the run scored (dynamic binarization draws with seed).
TEST_SET_KEYS = ("binarize", "threshold", "seed")


class Checkpoint(NamedTuple):
    model: CVAE  # in eval mode, on the CPU
    data_hparams: dict[str, Any]  # the run's BinarizedMNIST hyper-parameters ({} if the run saved none)


def read_checkpoint_dict(path: Path) -> dict[str, Any]:
    """The checkpoint's dictionary, read with weights_only=True; `VaeLabError` if the file is not a torch file."""
    import torch

    if not path.exists():
        raise VaeLabError(f"ckpt_path={path} does not exist; {WHAT_TO_PASS}.")
    if not path.is_file():
        raise VaeLabError(f"ckpt_path={path} is a directory, not a file; {WHAT_TO_PASS}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses anyway
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises KeyError, EOFError, RuntimeError, UnpicklingError... on bad bytes
        if zipfile.is_zipfile(path) and "Weights only load failed" in str(error):
            raise VaeLabError(
                f"ckpt_path={path} is a torch file holding Python objects other than tensors and plain values, "
                f"which vae_lab does not unpickle (weights_only=True); {WHAT_TO_PASS}."
            ) from error
        raise VaeLabError(f"ckpt_path={path} is not a PyTorch checkpoint (torch.load cannot read it); "
                          f"{WHAT_TO_PASS}.") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise VaeLabError(
            f"ckpt_path={path} is a torch file but not a Lightning checkpoint (no 'state_dict' entry; a bare "
            f"state_dict lacks the hyper-parameters needed to rebuild the model); {WHAT_TO_PASS}."
        )
    return checkpoint


def build_cvae(path: Path, checkpoint: dict[str, Any]) -> CVAE:
    """A CVAE with the checkpoint's hyper-parameters and weights; `VaeLabError` if they are some other model's."""
    from vae_lab.cvae import CVAE

    hparams = checkpoint.get("hyper_parameters")
    accepted = [name for name in inspect.signature(CVAE.__init__).parameters if name != "self"]
    if not isinstance(hparams, dict) or not hparams or set(hparams) - set(accepted):
        found = ", ".join(map(str, hparams)) if isinstance(hparams, dict) and hparams else "none"
        raise VaeLabError(
            f"ckpt_path={path} is a checkpoint of another model: its hyper-parameters ({found}) are not CVAE's "
            f"({', '.join(accepted)}); {WHAT_TO_PASS}."
        )
    try:
        model = CVAE(**hparams)
    except VaeLabError as error:
        raise VaeLabError(f"ckpt_path={path} holds hyper-parameters CVAE refuses ({error}); {WHAT_TO_PASS}.") from error
    problems = weight_mismatches(model.state_dict(), checkpoint["state_dict"])
    if problems:
        raise VaeLabError(
            f"ckpt_path={path} does not hold the weights of a CVAE with {hparams} ({'; '.join(problems)}); "
            f"{WHAT_TO_PASS}."
        )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def weight_mismatches(expected: dict[str, Tensor], found: dict[str, Any]) -> list[str]:
    """Short descriptions of missing, unexpected and wrongly shaped entries (the first three of each kind)."""
    import torch

    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    wrong = [
        f"{name} is {tuple(found[name].shape) if isinstance(found[name], torch.Tensor) else type(found[name]).__name__}"
        f", not {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and not (isinstance(found[name], torch.Tensor) and found[name].shape == tensor.shape)
    ]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            problems.append(f"{label}: {', '.join(names[:3])}{more}")
    return problems


def warm_start_weights(ckpt_path: str | Path, latent_dim: int) -> dict[str, Any]:
    """The weights in `ckpt_path` for a new run's CVAE of `latent_dim`, or `VaeLabError` in one sentence."""
    path = Path(ckpt_path).expanduser()
    checkpoint = read_checkpoint_dict(path)
    hparams = checkpoint.get("hyper_parameters")
    saved = hparams.get("latent_dim") if isinstance(hparams, dict) else None
    if saved is None:
        raise VaeLabError(f"ckpt_path={path} is a checkpoint of another model (no latent_dim among its "
                          f"hyper-parameters); {WHAT_TO_PASS}.")
    if saved != latent_dim:
        raise VaeLabError(
            f"ckpt_path={path} holds the weights of a CVAE with latent_dim={saved}, but model.latent_dim is "
            f"{latent_dim}; warm-start with model.latent_dim={saved}, or from a checkpoint of that size."
        )
    return checkpoint["state_dict"]


def warm_start(model: CVAE, ckpt_path: str | Path) -> None:
    """Copy the weights of `ckpt_path` into `model` (a new run: its optimizer, epochs and callbacks start fresh)."""
    weights = warm_start_weights(ckpt_path, model.hparams.latent_dim)
    problems = weight_mismatches(model.state_dict(), weights)
    if problems:
        raise VaeLabError(f"ckpt_path={ckpt_path} does not hold the weights of this CVAE ({'; '.join(problems)}); "
                          f"{WHAT_TO_PASS}.")
    model.load_state_dict(weights)


def load_checkpoint(ckpt_path: str | Path) -> Checkpoint:
    """The CVAE saved in `ckpt_path` and its run's data settings, or `VaeLabError` in one sentence."""
    path = Path(ckpt_path).expanduser()
    checkpoint = read_checkpoint_dict(path)
    data_hparams = checkpoint.get("datamodule_hyper_parameters")
    return Checkpoint(build_cvae(path, checkpoint), dict(data_hparams) if isinstance(data_hparams, dict) else {})


def mnist_test_batches(
    data_hparams: dict[str, Any], data_dir: str, batch_size: int, num_images: int | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """(images, labels) batches of the first `num_images` test images (all 10,000 if None), binarized as in training.

    Built by the run's own DataModule class, so static/dynamic binarization and its seed match what the run's
    `test/*` metrics saw.
    """
    from vae_lab.datamodule import BinarizedMNIST

    settings = {key: data_hparams[key] for key in TEST_SET_KEYS if key in data_hparams}
    datamodule = BinarizedMNIST(data_dir=data_dir, eval_batch_size=batch_size, **settings)
    datamodule.prepare_data()
    datamodule.setup("test")
    remaining = num_images
    for images, labels in datamodule.test_dataloader():
        if remaining is not None:
            if remaining <= 0:
                return
            images, labels = images[:remaining], labels[:remaining]
            remaining -= len(images)
        yield images, labels
