"""Fail at once, in one sentence, when the config asks for hardware this machine does not have."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

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


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, as under SLURM or taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    cores = usable_cpus()
    if threads is not None and threads > cores:
        raise VaeLabError(f"threads={threads} is more than the {cores} CPU cores this process may use; use null "
                          f"(torch's default) or a number from 1 to {cores}.")


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for this process (`threads=`; null keeps torch's default), at most its cores."""
    check_threads(threads)
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """The kernel's MemAvailable (Linux), or None where it cannot be read."""
    try:
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024.0


# Decoding images at once (prior samples, the latent manifold's grid): ~0.24 MB per image on the CPU (measured:
# `python -m vae_lab.sample n=100000` reached 24 GB before the kernel's OOM killer ended it).
BYTES_PER_DECODED_IMAGE = 0.24e6
# Every size a user can type that allocates in proportion: (config key, images it makes at once, bytes per image).
SIZES: tuple[tuple[str, Callable[[int], int], float], ...] = (
    ("data.batch_size", lambda batch: batch, BYTES_PER_BATCH_IMAGE),
    ("callbacks.sample_grid.num_samples", lambda n: n, BYTES_PER_DECODED_IMAGE),
    ("callbacks.latent_manifold.grid_size", lambda size: size * size, BYTES_PER_DECODED_IMAGE),
    ("n", lambda n: n, BYTES_PER_DECODED_IMAGE),  # python -m vae_lab.sample n=...
    # python -m vae_lab.evaluate: images encoded at once, and latent samples decoded per decoder call
    ("batch_size", lambda batch: batch, BYTES_PER_DECODED_IMAGE),
    ("decode_batch", lambda n: n, BYTES_PER_DECODED_IMAGE),
)


def estimate_bytes(cfg: DictConfig) -> tuple[str, float, float] | None:
    """The size setting of `cfg` that needs the most memory on the CPU: (key, bytes for all processes, per image)."""
    trainer = cfg.get("trainer") or {}
    devices = trainer.get("devices")
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    estimates = []
    for key, images, per_image in SIZES:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, int) and not isinstance(value, bool):
            estimates.append((key, processes * (BASE_BYTES + images(value) * per_image), per_image))
    return max(estimates, key=lambda estimate: estimate[1], default=None)


def runs_on_cpu(cfg: DictConfig) -> bool:
    """False where the big tensors live in a GPU's own memory (not checked here)."""
    device = str(cfg.get("device", (cfg.get("trainer") or {}).get("accelerator", "auto")))
    if device in (*HARDWARE_NAMES, "cuda"):
        return False
    if device == "auto":
        import torch

        return not torch.cuda.is_available()
    return True


def check_memory(cfg: DictConfig, available: float | None = None) -> None:
    """Refuse, before any work, a size setting whose tensors would not fit in this machine's memory on the CPU (the
    kernel's OOM killer would end the process, or someone else's on a shared machine)."""
    estimate = estimate_bytes(cfg)
    available = available_memory_bytes() if available is None else available
    if estimate is None or available is None or estimate[1] <= available or not runs_on_cpu(cfg):
        return
    key, needed, per_image = estimate
    value = OmegaConf.select(cfg, key)
    devices = (cfg.get("trainer") or {}).get("devices")
    each = f", in each of {devices} processes" if isinstance(devices, int) and devices > 1 else ""
    raise VaeLabError(
        f"{key}={value} needs about {needed / 1e9:.0f} GB of memory on the CPU (estimated: {BASE_BYTES / 1e9:.1f} GB + "
        f"{per_image / 1e6:.2f} MB per image made at once{each}), more than the {available / 1e9:.0f} GB available; "
        "use a smaller value (its default fits easily)."
    )
