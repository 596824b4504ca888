"""Fail at once, in one sentence, when the config asks for hardware this machine does not have."""

from __future__ import annotations

from omegaconf import DictConfig

from vae_lab.errors import VaeLabError

GPU_NAMES = ("gpu", "cuda")


def check_accelerator(trainer_cfg: DictConfig) -> None:
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in GPU_NAMES and not torch.cuda.is_available():
        raise VaeLabError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU, but torch finds none on this machine; "
            "use trainer.accelerator=cpu (or accelerator=cpu / accelerator=auto)."
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise VaeLabError("trainer.accelerator=mps needs Apple's MPS backend, which this machine lacks; "
                          "use trainer.accelerator=cpu.")


def pick_device(name: str) -> str:
    """The torch device for `python -m vae_lab.evaluate device=auto|cpu|cuda`: auto takes a GPU if torch finds one."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise VaeLabError("device=cuda needs a CUDA GPU, but torch finds none on this machine; use device=cpu.")
    return name
