"""Checkpoint files that are either the old version or the new one, never half of each, and load safely.

Lightning's default writer truncates the target and writes into it (through a temporary file in the system's
temp folder, which `shutil.move` copies when that is another filesystem), so a kill during the save can leave a
corrupt `last.ckpt`. Here the bytes go through `atomic_files.atomic_write` (a temporary file in the same
directory, fsync'ed, swapped in by `os.replace`; a full disk is one sentence naming the file). Loading defaults to
`torch.load(weights_only=True)`: tensors and plain containers only, no arbitrary code from a file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from vae_lab.atomic_files import atomic_write


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save(obj, path)`, but readers only ever see the previous file or the complete new one."""
    atomic_write(Path(path), lambda stream: torch.save(obj, stream))


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options.")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location, weights_only=weights_only is not False)
