"""Checkpoint files: written atomically, read with `weights_only=True`, and a model rebuilt from one alone.

`AtomicCheckpointIO` (conf/trainer/default.yaml) saves through `atomic_files.atomic_write` (Lightning's writer can
leave a corrupt `last.ckpt` when killed mid-save). `load_checkpoint` is `load_from_checkpoint(weights_only=True)`
by hand, so that every way a file can be wrong is one sentence naming the file and what to pass.
"""

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

WHAT_TO_PASS = "pass a .ckpt file written by `python -m vae_lab.train`, such as <run dir>/checkpoints/last.ckpt"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save(obj, path)`, but readers only ever see the previous file or the complete new one."""
    atomic_write(Path(path), lambda stream: torch.save(obj, stream))


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options.")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, *args: Any, weights_only: bool | None = None, **kwargs: Any) -> dict[str, Any]:
        # weights_only unless a caller says otherwise: torch < 2.6 unpickles anything by default.
        return super().load_checkpoint(*args, weights_only=weights_only is not False, **kwargs)


class Checkpoint(NamedTuple):
    model: VAE  # in eval mode, on the CPU
    data_class: str  # the run's DataModule, as an import path
    data_hparams: dict[str, Any]  # its hyper-parameters ({} if the run saved none)


def read_checkpoint_dict(path: Path, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's dictionary; `VaeLabError` naming `key=path` if the file is not a Lightning checkpoint.

    The file is mapped (mmap), not read: a look at its progress or shapes reads its index, not its tensors.
    """
    if not path.is_file():
        raise VaeLabError(f"{key}={path} {'is a directory, not a file' if path.is_dir() else 'does not exist'}; "
                          f"{WHAT_TO_PASS}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses anyway
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:  # a whole torch file (a cut one fails before unpickling)
        raise VaeLabError(f"{key}={path} is a torch file holding Python objects other than tensors and plain values, "
                          f"which vae_lab does not unpickle (weights_only=True); {WHAT_TO_PASS}.") from error
    except Exception as error:  # torch raises KeyError, EOFError, RuntimeError... on bad bytes
        with path.open("rb") as stream:
            if stream.read(4) == b"PK\x03\x04":  # a torch (zip) file whose end is missing or damaged
                raise VaeLabError(f"{key}={path} is corrupt: a torch file that is truncated or damaged "
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


def check_weights(model: VAE, weights: dict[str, Any], says: str, advice: str) -> None:
    """Refuse `weights` that do not fit `model`: `{says} (missing: a, b, c and 2 more; wrong shape: ...); {advice}.`"""
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    found = {name: tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
             for name, value in weights.items()}
    kinds = {"missing": [name for name in expected if name not in found],
             "unexpected": [name for name in found if name not in expected],
             "wrong shape": [f"{name} is {found[name]}, not {shape}" for name, shape in expected.items()
                             if name in found and found[name] != shape]}
    problems = [f"{kind}: {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}"
                for kind, names in kinds.items() if names]
    if problems:
        raise VaeLabError(f"{says} ({'; '.join(problems)}); {advice}.")


def warm_start(model: VAE, ckpt_path: Path) -> None:
    """Copy the weights of `ckpt_path` into `model` (a new run: its optimizer, epochs and callbacks start fresh)."""
    weights = read_checkpoint_dict(ckpt_path, "warm_start_from")["state_dict"]
    check_weights(model, weights, f"warm_start_from={ckpt_path} does not hold the weights of this "
                  f"{type(model).__name__}", "warm-start from a checkpoint of the same model and size")
    model.load_state_dict(weights)


def epochs_done(checkpoint: dict[str, Any]) -> int:
    """Epochs the checkpoint has finished (Lightning saves `last.ckpt` after an epoch's validation)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress.get("processed", checkpoint.get("epoch", -1) + 1))


def check_continues(model: VAE, ckpt_path: Path, max_epochs: int | None) -> None:
    """Refuse, in one sentence, a `ckpt_path` whose weights do not fit the model or that has no epoch left to train
    (`Trainer.fit` would return at once, and the run would read as completed)."""
    checkpoint = read_checkpoint_dict(ckpt_path)
    saved = checkpoint.get("hyper_parameters") or {}
    check_weights(model, checkpoint["state_dict"], f"ckpt_path={ckpt_path} holds a model with {saved} that does not "
                  f"fit this {type(model).__name__}", "continue it with its own config (resume=<its run dir>), or set "
                  "the model options to the checkpoint's")
    done = epochs_done(checkpoint)
    if isinstance(max_epochs, int) and 0 <= max_epochs <= done:
        raise ConfigError(f"ckpt_path={ckpt_path} has nothing to train: it has finished {done} epochs and "
                          f"trainer.max_epochs is {max_epochs}; add trainer.max_epochs=N with N > {done}.")


def init_parameters(cls: type) -> list[str]:
    """The keyword arguments `cls(...)` takes, following `**common` up to the base class that names them (VAE)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__:
            continue
        parameters = list(inspect.signature(klass.__dict__["__init__"]).parameters.values())[1:]  # not self
        names += [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def load_checkpoint(ckpt_path: str | Path) -> Checkpoint:
    """The model saved in `ckpt_path` and its run's data settings, or `VaeLabError` in one sentence."""
    path = Path(ckpt_path).expanduser()
    checkpoint = read_checkpoint_dict(path)
    classes = checkpoint.get("vae_lab") or {}
    if "model" not in classes:
        raise VaeLabError(f"ckpt_path={path} records no model class (written before vae_lab 0.1's checkpoints named "
                          f"theirs); {WHAT_TO_PASS}.")
    try:
        model_class = get_class(classes["model"])
    except Exception as error:
        raise VaeLabError(f"ckpt_path={path} holds a {classes['model']}, which cannot be imported here ({error}); "
                          "put its module on the Python path.") from error
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    accepted = init_parameters(model_class)
    if not hparams or set(hparams) - set(accepted):
        raise VaeLabError(
            f"ckpt_path={path} is a checkpoint of another model: its hyper-parameters ({', '.join(hparams) or 'none'}) "
            f"are not {model_class.__name__}'s ({', '.join(accepted)}); {WHAT_TO_PASS}."
        )
    try:
        model = model_class(**hparams)
    except (VaeLabError, TypeError) as error:  # TypeError: a keyword that `**common` does not take either
        raise VaeLabError(f"ckpt_path={path} holds hyper-parameters {model_class.__name__} refuses ({error}); "
                          f"{WHAT_TO_PASS}.") from error
    check_weights(model, checkpoint["state_dict"], f"ckpt_path={path} does not hold the weights of a "
                  f"{model_class.__name__} with {hparams}", WHAT_TO_PASS)
    model.load_state_dict(checkpoint["state_dict"])
    return Checkpoint(model.eval(), classes["data"], dict(checkpoint.get("datamodule_hyper_parameters") or {}))


def test_batches(
    checkpoint: Checkpoint, data_dir: str, batch_size: int, num_images: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches of the first `num_images` test images (all if None), binarized as in training.

    Built by the run's own DataModule class from its saved settings (a local `data_dir` replaces the run's), so
    static/dynamic binarization matches what the run's `test/*` metrics saw.
    """
    settings = {**checkpoint.data_hparams, "eval_batch_size": batch_size}
    if "data_dir" in settings:
        settings["data_dir"] = data_dir
    data_class = get_class(checkpoint.data_class)
    accepted = inspect.signature(data_class).parameters
    datamodule = data_class(**{key: value for key, value in settings.items() if key in accepted})
    datamodule.prepare_data()
    datamodule.setup("test")
    left = sys.maxsize if num_images is None else num_images
    for images, labels in datamodule.test_dataloader():
        if left <= 0:
            return
        yield images[:left], labels[:left]
        left -= len(images)
