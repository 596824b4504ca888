"""Load a trained model from its `.ckpt` file alone, and the test set its run scored.

The file is read once with `torch.load(weights_only=True)` (tensors and plain values only: a checkpoint
from someone else cannot run code on load), checked, and the model rebuilt from the class and hyper-parameters
it records (`VAE.on_save_checkpoint`). That is what `load_from_checkpoint(path, weights_only=True)` does too; we
do it by hand because every way a file can be wrong must become one sentence naming the file and what to pass.
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

    from vae_lab.models.vae import VAE

WHAT_TO_PASS = "pass a .ckpt file written by `python -m vae_lab.train`, such as <run dir>/checkpoints/last.ckpt"
# Checkpoints written before models were configurable hold a CVAE on MNIST, with speed options among its hparams.
LEGACY = {"model": "vae_lab.models.cvae.CVAE", "data": "vae_lab.data.mnist.BinarizedMNIST"}
REMOVED_HPARAMS = ("channels_last", "fused_adam", "compile")


class CorruptCheckpoint(VaeLabError):
    """A torch file that was cut short or damaged (a full disk, a copy that did not finish, a bad sector)."""


class Checkpoint(NamedTuple):
    model: VAE  # in eval mode, on the CPU
    data_class: str  # the run's DataModule, as an import path
    data_hparams: dict[str, Any]  # its hyper-parameters ({} if the run saved none)


def read_checkpoint_dict(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's dictionary, read with weights_only=True; `VaeLabError` if the file is not a torch file."""
    import torch

    if not path.exists():
        raise VaeLabError(f"{key}={path} does not exist; {WHAT_TO_PASS}.")
    if not path.is_file():
        raise VaeLabError(f"{key}={path} is a directory, not a file; {WHAT_TO_PASS}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses anyway
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises KeyError, EOFError, RuntimeError, UnpicklingError... on bad bytes
        if zipfile.is_zipfile(path) and "Weights only load failed" in str(error):
            raise VaeLabError(
                f"{key}={path} is a torch file holding Python objects other than tensors and plain values, "
                f"which vae_lab does not unpickle (weights_only=True); {WHAT_TO_PASS}."
            ) from error
        with path.open("rb") as stream:
            if stream.read(4) == b"PK\x03\x04":  # a torch (zip) file whose end is missing or damaged
                raise CorruptCheckpoint(f"{key}={path} is corrupt: a torch file that is truncated or damaged "
                                        "(torch.load cannot read it); use another checkpoint of its run, such as an "
                                        "epoch_NNN.ckpt beside it.") from error
        raise VaeLabError(f"{key}={path} is not a PyTorch checkpoint (torch.load cannot read it); "
                          f"{WHAT_TO_PASS}.") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise VaeLabError(
            f"{key}={path} is a torch file but not a Lightning checkpoint (no 'state_dict' entry; a bare "
            f"state_dict lacks the hyper-parameters needed to rebuild the model); {WHAT_TO_PASS}."
        )
    return checkpoint


def build_model(path: Path, checkpoint: dict[str, Any]) -> VAE:
    """The checkpoint's model class with its hyper-parameters and weights; `VaeLabError` if they do not fit."""
    from hydra.utils import get_class

    target = (checkpoint.get("vae_lab") or LEGACY)["model"]
    try:
        model_class = get_class(target)
    except Exception as error:
        raise VaeLabError(f"ckpt_path={path} holds a {target}, which cannot be imported here ({error}); put its "
                          "module on the Python path.") from error
    hparams = {name: value for name, value in (checkpoint.get("hyper_parameters") or {}).items()
               if name not in REMOVED_HPARAMS or "vae_lab" in checkpoint}
    accepted = [name for name in inspect.signature(model_class.__init__).parameters if name != "self"]
    if not hparams or set(hparams) - set(accepted):
        raise VaeLabError(
            f"ckpt_path={path} is a checkpoint of another model: its hyper-parameters ({', '.join(hparams) or 'none'}) "
            f"are not {model_class.__name__}'s ({', '.join(accepted)}); {WHAT_TO_PASS}."
        )
    try:
        model = model_class(**hparams)
    except VaeLabError as error:
        raise VaeLabError(f"ckpt_path={path} holds hyper-parameters {model_class.__name__} refuses ({error}); "
                          f"{WHAT_TO_PASS}.") from error
    problems = weight_mismatches(model.state_dict(), checkpoint["state_dict"])
    if problems:
        raise VaeLabError(
            f"ckpt_path={path} does not hold the weights of a {model_class.__name__} with {hparams} "
            f"({'; '.join(problems)}); {WHAT_TO_PASS}."
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


def warm_start(model: VAE, ckpt_path: Path) -> None:
    """Copy the weights of `ckpt_path` into `model` (a new run: its optimizer, epochs and callbacks start fresh)."""
    weights = read_checkpoint_dict(ckpt_path, "warm_start_from")["state_dict"]
    problems = weight_mismatches(model.state_dict(), weights)
    if problems:
        raise VaeLabError(f"warm_start_from={ckpt_path} does not hold the weights of this {type(model).__name__} "
                          f"({'; '.join(problems)}); warm-start from a checkpoint of the same model and size.")
    model.load_state_dict(weights)


def check_continues(model: VAE, ckpt_path: Path) -> None:
    """Refuse, in one sentence, a `ckpt_path` whose weights do not fit the configured model (before training)."""
    checkpoint = read_checkpoint_dict(ckpt_path)
    problems = weight_mismatches(model.state_dict(), checkpoint["state_dict"])
    if problems:
        saved = checkpoint.get("hyper_parameters") or {}
        raise VaeLabError(
            f"ckpt_path={ckpt_path} holds a model with {saved} that does not fit this {type(model).__name__} "
            f"({'; '.join(problems)}); continue it with its own config (resume=<its run dir>), or set the model "
            "options to the checkpoint's."
        )


def load_checkpoint(ckpt_path: str | Path) -> Checkpoint:
    """The model saved in `ckpt_path` and its run's data settings, or `VaeLabError` in one sentence."""
    path = Path(ckpt_path).expanduser()
    checkpoint = read_checkpoint_dict(path)
    data_hparams = checkpoint.get("datamodule_hyper_parameters")
    data_class = (checkpoint.get("vae_lab") or LEGACY).get("data", LEGACY["data"])
    return Checkpoint(build_model(path, checkpoint), data_class,
                      dict(data_hparams) if isinstance(data_hparams, dict) else {})


def test_batches(
    checkpoint: Checkpoint, data_dir: str, batch_size: int, num_images: int | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """(images, labels) batches of the first `num_images` test images (all if None), binarized as in training.

    Built by the run's own DataModule class from its saved settings (a local `data_dir` replaces the run's), so
    static/dynamic binarization matches what the run's `test/*` metrics saw.
    """
    from hydra.utils import get_class

    settings = dict(checkpoint.data_hparams)
    if "data_dir" in settings:
        settings["data_dir"] = data_dir
    settings["eval_batch_size"] = batch_size
    data_class = get_class(checkpoint.data_class)
    accepted = inspect.signature(data_class.__init__).parameters
    datamodule = data_class(**{key: value for key, value in settings.items() if key in accepted})
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
