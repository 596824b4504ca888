"""Fail at once, in one sentence, when the config asks for hardware this machine does not have."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vae_lab.errors import VaeLabError

GPU_NAMES = ("gpu", "cuda")
HARDWARE_NAMES = (*GPU_NAMES, "mps")  # accelerators that need a look at the machine (and have their own memory)
# Peak RSS of a CPU training process, fp32: ~1.1 GB, plus ~0.46 MB per image of a training batch (measured: 2.48 GB
# at batch 3,000, 3.86 GB at 6,000; the default batch of 100 needs ~1.2 GB).
BASE_BYTES, BYTES_PER_BATCH_IMAGE = 1.1e9, 0.46e6


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


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """The kernel's MemAvailable (Linux), or None where it cannot be read."""
    try:
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024.0


def check_memory(cfg: DictConfig, available: float | None = None) -> None:
    """Refuse a training batch too large for this machine's memory on the CPU (the kernel would kill the run)."""
    batch, trainer = cfg.data.batch_size, cfg.trainer
    available = available_memory_bytes() if available is None else available
    processes = trainer.get("devices") if isinstance(trainer.get("devices"), int) and trainer.devices > 0 else 1
    needed = processes * (BASE_BYTES + batch * BYTES_PER_BATCH_IMAGE)
    if available is None or needed <= available:
        return
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in HARDWARE_NAMES:
        return
    if accelerator == "auto":
        import torch

        if torch.cuda.is_available():
            return
    raise VaeLabError(
        f"data.batch_size={batch} needs about {needed / 1e9:.0f} GB of memory to train on the CPU (~0.46 MB per "
        f"image of a batch{f', in each of {processes} processes' if processes > 1 else ''}), more than the "
        f"{available / 1e9:.0f} GB available; use a smaller batch, like 100."
    )
