"""What the entry points print beyond Hydra's job logging (conf/hydra/job_logging/vae_lab.yaml): Lightning's lines
once and without its advertisement, and `print_end_block`, the last lines of every command."""

from __future__ import annotations

import logging
import shlex
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path


class DropAdvertisements(logging.Filter):  # Lightning's "Tip" advertising its cloud logger: nothing to act on
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def log_lightning_once() -> None:
    """Lightning's lines once each, through the job logging's handlers only (terminal and train.log): `import
    lightning` gives its loggers handlers of their own. Call after Hydra configured logging."""
    import lightning  # noqa: F401  (its import adds the handlers; it must come first)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def quiet_third_party_warnings() -> None:
    """Lightning 2.6 calls torch's deprecated `LeafSpec` on every fit: Lightning's to fix, not a user's."""
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)


def print_end_block(heading: str, metrics: Mapping[str, object] | None = None, notes: Sequence[str] = (),
                    logdir: Path | None = None) -> None:
    """The closing lines of a command: `heading` (what ran and where it went), the final metrics, `notes` (files,
    follow-up commands) and, when `logdir` holds TensorBoard events, the command that opens them."""
    numbers = [f"{name} {value if isinstance(value, int) else f'{value:.4f}'}" for name, value in
               (metrics or {}).items() if isinstance(value, int | float) and not isinstance(value, bool)]
    lines = [heading, *textwrap.wrap("   ".join(numbers), width=110, initial_indent="  ", subsequent_indent="  ",
                                     break_long_words=False, break_on_hyphens=False), *(f"  {note}" for note in notes)]
    if logdir is not None and next(Path(logdir).rglob("events.out.tfevents.*"), None) is not None:
        lines.append(f"  view it: tensorboard --logdir {shlex.quote(str(logdir))}")
    print("\n".join(lines), flush=True)

