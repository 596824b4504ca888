"""Files that are either the old version or the whole new one (made in memory, written to a temporary file beside
them, fsynced, swapped in with `os.replace`), and a full or read-only disk in one sentence naming the path (not, for a
checkpoint, torch's `enforce fail`)."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from vae_lab.errors import VaeLabError


def cannot_write(path: Path, error: OSError) -> VaeLabError:
    return VaeLabError(f"cannot write {path} ({error.strerror or error}); free some space or make it writable, or "
                       "choose another folder (output_dir=... for evaluate and sample, hydra.run.dir=... for a run).")


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write what `write(stream)` puts into a binary stream to `path`: readers see the old file or the new one."""
    path, buffer, tmp = Path(path), io.BytesIO(), None
    write(buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); a run's files are read by others, e.g. TensorBoard
        with os.fdopen(handle, "wb") as stream:
            stream.write(buffer.getbuffer())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise cannot_write(path, error) from error
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda stream: stream.write(text.encode()))


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and write (then remove) a small file in it; raise one sentence if that fails."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, buffering=0) as probe:  # a full disk fails the write or the fsync
            probe.write(b"\0" * 4096)
            os.fsync(probe.fileno())
    except OSError as error:
        raise cannot_write(Path(folder), error) from error
