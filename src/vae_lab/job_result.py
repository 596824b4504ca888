"""How a run tells the world it finished: `<run dir>/result.json` with its status and final metrics.

`python -m vae_lab.train` writes it when training ends (status `completed`, the final logged metrics) and, in a
sweep, when a job fails with a `VaeLabError` (status `failed`, the one-sentence error). A run directory without
the file crashed, was killed (SIGKILL), or is still running; Ctrl-C and SIGTERM record `interrupted`. The sweep
summary and `vae_lab.report` read only this file for status and final metrics, so a job never has to be judged
from half-written TensorBoard events.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vae_lab.atomic_files import atomic_write_text

RESULT_FILE = "result.json"
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"


@dataclass(frozen=True)
class JobResult:
    status: str  # COMPLETED, FAILED or INTERRUPTED (Ctrl-C, SIGTERM)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def write_result(run_dir: Path, result: JobResult) -> Path:
    """Write `result` to `<run_dir>/result.json` atomically: a reader sees the old file or the whole new one."""
    return atomic_write_text(Path(run_dir) / RESULT_FILE, json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")


def read_result(run_dir: Path) -> JobResult | None:
    """The run's recorded result, or None when the run never recorded one."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    fields = json.loads(path.read_text())
    return JobResult(status=fields["status"], metrics=fields.get("metrics", {}), error=fields.get("error"))
