"""What this machine can do, checked before the work that needs it: the device, the CPU cores, the memory."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vae_lab.errors import ConfigError, is_int

# Peak RSS of a CPU training process, fp32: ~1.1 GB, plus ~0.46 MB per image of a training batch (measured: 2.48 GB
# at batch 3,000, 3.86 GB at 6,000). Decoding images at once (prior samples, the latent manifold's grid): ~0.24 MB
# per image (`python -m vae_lab.sample n=100000` reached 24 GB before the kernel's OOM killer ended it).
BASE_BYTES, BYTES_PER_BATCH_IMAGE, BYTES_PER_DECODED_IMAGE = 1.1e9, 0.46e6, 0.24e6
# The estimates are measured means: a size is refused unless it fits with this headroom (grid_size=300 was
# estimated at 22.7 GB and peaked at 23.4 GB).
HEADROOM = 1.25
# Every size a user can type that allocates in proportion: key -> (images made at once are the value to this power,
# bytes per image). `n`: vae_lab.sample; `batch_size`, `decode_batch`: vae_lab.evaluate.
SIZES = {"data.batch_size": (1, BYTES_PER_BATCH_IMAGE), "n": (1, BYTES_PER_DECODED_IMAGE),
         "callbacks.sample_grid.num_samples": (1, BYTES_PER_DECODED_IMAGE),
         "callbacks.latent_manifold.grid_size": (2, BYTES_PER_DECODED_IMAGE),
         "batch_size": (1, BYTES_PER_DECODED_IMAGE), "decode_batch": (1, BYTES_PER_DECODED_IMAGE)}


def check_device(key: str, name: str) -> str:
    """The torch device `key=name` asks for (auto: a GPU if torch finds one); a GPU this machine lacks is refused."""
    import torch

    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={name} needs a CUDA GPU, but torch finds none on this machine; use {key}=cpu.")
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def set_threads(threads: object) -> None:
    """torch's intra-op threads for this process (`threads=`; null keeps torch's default), at most the cores it may
    run on (its affinity mask where the OS has one, as under SLURM or taskset)."""
    if threads is None:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not is_int(threads) or not 1 <= threads <= cores:
        raise ConfigError(f"threads={threads} is not allowed on this machine ({cores} CPU cores for this process); "
                          f"use null (torch's default) or a number from 1 to {cores}.")
    import torch

    torch.set_num_threads(threads)


def check_memory(cfg: DictConfig, available: float | None = None) -> None:
    """Refuse the size setting of `cfg` that needs the most memory if it would not fit on the CPU with `HEADROOM`
    (the kernel's OOM killer would end the process, or someone else's on a shared machine); a GPU has its own."""
    devices = (cfg.get("trainer") or {}).get("devices")
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    sizes = [(processes * (BASE_BYTES + value**power * per_image), key, value, per_image)
             for key, (power, per_image) in SIZES.items() if is_int(value := OmegaConf.select(cfg, key, default=None))]
    if available is None:  # the kernel's MemAvailable (Linux); unknown elsewhere, and nothing is refused
        try:
            meminfo = Path("/proc/meminfo").read_text().splitlines()
            available = next(int(line.split()[1]) * 1024.0 for line in meminfo if line.startswith("MemAvailable:"))
        except (OSError, StopIteration):
            return
    if not sizes or max(sizes)[0] * HEADROOM <= available:
        return
    device = str(cfg.get("device", (cfg.get("trainer") or {}).get("accelerator", "auto")))
    if device != "cpu" and (device != "auto" or check_device("device", "auto") != "cpu"):
        return
    needed, key, value, per_image = max(sizes)
    each = f", in each of {processes} processes" if processes > 1 else ""
    raise ConfigError(
        f"{key}={value} needs about {needed / 1e9:.1f} GB of memory on the CPU (estimated: {BASE_BYTES / 1e9:.1f} GB + "
        f"{per_image / 1e6:.2f} MB per image made at once{each}, plus {HEADROOM - 1:.0%} headroom), more than the "
        f"{available / 1e9:.1f} GB available; use a smaller value (its default fits easily)."
    )
