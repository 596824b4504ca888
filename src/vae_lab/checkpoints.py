"""Checkpoints: written atomically, read with `weights_only=True`, and a model rebuilt from one alone (by hand, not
`load_from_checkpoint`, so that every way a file can be wrong is one sentence naming it and what to pass)."""

from __future__ import annotations

import inspect
import pickle
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from hydra.utils import get_class
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from vae_lab.atomic_files import atomic_write
from vae_lab.errors import ConfigError, VaeLabError

if TYPE_CHECKING:
    from vae_lab.models.vae import VAE

WHAT_TO_PASS = ("pass a .ckpt file written by `python -m vae_lab.train`, such as <run dir>/checkpoints/last.ckpt or "
                "an epoch_NNN.ckpt beside it")


class AtomicCheckpointIO(TorchCheckpointIO):
    """conf/trainer/default.yaml: Lightning's own writer can leave a corrupt `last.ckpt` when killed mid-save."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options.")
        atomic_write(Path(path), lambda stream: torch.save(checkpoint, stream))  # old file or whole new one

    def load_checkpoint(self, *args: Any, weights_only: bool | None = None, **kwargs: Any) -> dict[str, Any]:
        # weights_only unless a caller says otherwise: torch < 2.6 unpickles anything by default.
        return super().load_checkpoint(*args, weights_only=weights_only is not False, **kwargs)


class Checkpoint(NamedTuple):
    model: VAE  # in eval mode, on the CPU
    data_class: str  # the run's DataModule, as an import path
    data_hparams: dict[str, Any]  # its hyper-parameters ({} if the run saved none)


def read_checkpoint_dict(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's dictionary, mapped (a look at its progress or shapes reads its index, not its tensors); else
    `VaeLabError` naming `key=path` and what to pass."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses anyway
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except OSError as error:  # missing, a folder, unreadable
        problem = f"cannot be read ({error.strerror or error})"
    except pickle.UnpicklingError:  # a whole torch file (a cut one fails before unpickling)
        problem = "holds Python objects other than tensors and plain values, which vae_lab does not unpickle"
    except Exception:  # torch raises KeyError, EOFError, RuntimeError... on bad bytes
        problem = "is not a PyTorch checkpoint, or is one cut short or damaged"
    else:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
            return checkpoint
        problem = "is not a Lightning checkpoint (no state_dict; a bare state_dict cannot rebuild its model)"
    raise VaeLabError(f"{key}={path} {problem}; {WHAT_TO_PASS}.")


def check_weights(model: VAE, weights: dict[str, Any], says: str, advice: str) -> None:
    """Refuse `weights` that do not fit `model`: `{says} (a is missing; b is (2,), not (3,) and 4 more); {advice}.`"""
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    found = {name: tuple(getattr(value, "shape", ())) for name, value in weights.items()}
    problems = [f"{name} is {found[name]}, not {shape}" if name in found else f"{name} is missing"
                for name, shape in expected.items() if found.get(name) != shape]
    problems += [f"{name} is unexpected" for name in found if name not in expected]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise VaeLabError(f"{says} ({'; '.join(problems[:3])}{more}); {advice}.")


def warm_start(model: VAE, ckpt_path: Path) -> None:
    """Copy the weights of `ckpt_path` into `model` (a new run: its optimizer, epochs and callbacks start fresh)."""
    weights = read_checkpoint_dict(ckpt_path, "warm_start_from")["state_dict"]
    check_weights(model, weights, f"warm_start_from={ckpt_path} does not hold the weights of this "
                  f"{type(model).__name__}", "warm-start from a checkpoint of the same model and size")
    model.load_state_dict(weights)


def nothing_to_train(checkpoint: dict[str, Any], max_epochs: object) -> str | None:
    """Why a checkpoint that has finished `max_epochs` cannot continue (`Trainer.fit` would return at once, and the
    run would read as completed), else None: the one check of `ckpt_path=`, `resume=` and a resumed sweep's jobs."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    done = int(progress.get("processed", checkpoint.get("epoch", -1) + 1))  # last.ckpt is saved after validation
    if isinstance(max_epochs, int) and 0 <= max_epochs <= done:
        return (f"has nothing to train: it has finished {done} epochs and trainer.max_epochs is {max_epochs}; "
                f"add trainer.max_epochs=N with N > {done}.")
    return None


def check_continues(model: VAE, ckpt_path: Path, max_epochs: int | None) -> None:
    """Refuse a `ckpt_path` whose weights do not fit `model` or that has no epoch left to train."""
    checkpoint = read_checkpoint_dict(ckpt_path)
    saved = checkpoint.get("hyper_parameters") or {}
    check_weights(model, checkpoint["state_dict"], f"ckpt_path={ckpt_path} holds a model with {saved} that does not "
                  f"fit this {type(model).__name__}", "continue it with its own config (resume=<its run dir>), or set "
                  "the model options to the checkpoint's")
    if why := nothing_to_train(checkpoint, max_epochs):
        raise ConfigError(f"ckpt_path={ckpt_path} {why}")


def load_checkpoint(ckpt_path: str | Path) -> Checkpoint:
    """The model saved in `ckpt_path` and its run's data settings, or `VaeLabError` in one sentence."""
    path = Path(ckpt_path).expanduser()
    checkpoint = read_checkpoint_dict(path)
    classes, hparams = checkpoint.get("vae_lab") or {}, dict(checkpoint.get("hyper_parameters") or {})
    try:  # the class `VAE.on_save_checkpoint` recorded, given the saved hyper-parameters
        model = get_class(classes["model"])(**hparams)
    except (KeyError, ImportError, ValueError, TypeError, VaeLabError) as error:  # not vae_lab's, or another model's
        found = " ".join(f"{classes['model']}: {error}".split()) if "model" in classes else "no model class recorded"
        raise VaeLabError(f"ckpt_path={path} holds no model vae_lab can rebuild here ({found}); {WHAT_TO_PASS} (for a "
                          "model of your own, with its module on the Python path).") from error
    check_weights(model, checkpoint["state_dict"], f"ckpt_path={path} does not hold the weights of a "
                  f"{type(model).__name__} with {hparams}", WHAT_TO_PASS)
    model.load_state_dict(checkpoint["state_dict"])
    return Checkpoint(model.eval(), classes["data"], dict(checkpoint.get("datamodule_hyper_parameters") or {}))


def test_batches(
    checkpoint: Checkpoint, data_dir: str, batch_size: int, num_images: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches of the first `num_images` test images (all if None), from the run's own DataModule
    class and settings, so that binarization matches the run's `test/*` metrics."""
    data_class = get_class(checkpoint.data_class)
    settings = {**checkpoint.data_hparams, "eval_batch_size": batch_size, "data_dir": data_dir}
    accepted = inspect.signature(data_class).parameters  # a local data_dir replaces the run's, where it has one
    datamodule = data_class(**{key: value for key, value in settings.items() if key in accepted})
    datamodule.prepare_data()
    datamodule.setup("test")
    left = sys.maxsize if num_images is None else num_images
    for images, labels in datamodule.test_dataloader():
        yield images[:left], labels[:left]
        if (left := left - len(images)) <= 0:
            return
