"""What vae_lab's entry points print: only messages a user can act on, and a closing block that says where it went.

Where log lines go (once to the terminal, every line also to `<run dir>/train.log`, kept across resumes) is
Hydra's job logging, `conf/hydra/job_logging/vae_lab.yaml`; this module holds what that file cannot say: the
filter that drops Lightning's advertisement, Lightning's own handlers taken off (`import lightning` adds them
whatever the logging config), the third-party warning silenced, and `print_end_block`, the last lines of every
`train`, `evaluate`, `sample` and sweep.
"""

from __future__ import annotations

import logging
import shlex
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

# Lightning >= 2.6 logs a "Tip" advertising its cloud logger once per Trainer: not something to act on.
_ADVERTISEMENTS = ("litlogger",)


class DropAdvertisements(logging.Filter):
    """A handler filter (see the job logging config) that drops Lightning's product tips."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(word in message for word in _ADVERTISEMENTS)


class BarSafeHandler(logging.StreamHandler):
    """The terminal's log handler: writes through tqdm, which lifts the progress bar off the line first, so a line
    logged during training (`Trainer.fit stopped: ...`) is not glued to the end of the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # as logging.StreamHandler does: report a broken handler, never raise into the run
            self.handleError(record)


def log_lightning_once() -> None:
    """Send Lightning's log lines only to the job logging's handlers (terminal and train.log), once each.

    `import lightning` gives its loggers handlers of their own (always for `lightning`, and for `lightning.pytorch` /
    `lightning.fabric` when imported before Hydra configured logging): each line was printed twice and missed
    train.log. Call after Hydra configured logging, i.e. inside the task function.
    """
    import lightning  # noqa: F401  (its import adds the handlers; it must come first)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def quiet_third_party_warnings() -> None:
    """Silence warnings about code inside our dependencies, which a user of vae_lab cannot change.

    Lightning 2.6's `utilities/_pytree.py` still calls torch's deprecated `LeafSpec` (torch >= 2.10 warns on every
    fit); it is Lightning's to fix, and nothing changes for a user until it does.
    """
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)


def print_end_block(heading: str, metrics: Mapping[str, object] | None = None, notes: Sequence[str] = (),
                    logdir: Path | None = None) -> None:
    """The closing lines of a command: `heading` (what ran and where it went), the final metrics, `notes` (files,
    follow-up commands) and, when `logdir` holds TensorBoard events, the command that opens them."""
    lines = [heading]
    numbers = [f"{name} {_number(value)}" for name, value in (metrics or {}).items()
               if isinstance(value, int | float) and not isinstance(value, bool)]
    if numbers:
        lines += textwrap.wrap("   ".join(numbers), width=110, initial_indent="  ", subsequent_indent="  ",
                               break_long_words=False, break_on_hyphens=False)
    lines += [f"  {note}" for note in notes]
    if logdir is not None and next(Path(logdir).rglob("events.out.tfevents.*"), None) is not None:
        lines.append(f"  view it: tensorboard --logdir {shlex.quote(str(logdir))}")
    print("\n".join(lines), flush=True)


def run_dir_of(ckpt_path: str | Path) -> Path:
    """The run folder a checkpoint belongs to (`<run>/checkpoints/x.ckpt` -> `<run>`), else the checkpoint's folder."""
    folder = Path(ckpt_path).expanduser().resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"
