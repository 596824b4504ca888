"""How a run and a sweep report their outcome: `<run dir>/result.json`, one line per failed job, a sweep's summary.

`result.json` holds the status (`completed` with the final metrics, `failed` with the error, `interrupted` by
Ctrl-C or SIGTERM); a run folder without it crashed hard, was killed (SIGKILL) or is still running. The sweep
summary, `vae_lab.report` and a resumed sweep read only this file, so a job is never judged from half-written
TensorBoard events. Inside a sweep (`-m`, an Optuna search) an error fails only its own job: raising it would end
every job still to come (all of them, with Hydra's in-process launcher), so the job records its failure and
returns. `SweepSummary`, a Hydra callback, then makes the sweep exit non-zero if any job failed.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from vae_lab.atomic_files import atomic_write_text
from vae_lab.errors import VaeLabError

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"


@dataclass(frozen=True)
class JobResult:
    status: str  # COMPLETED, FAILED or INTERRUPTED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def write_result(run_dir: Path, result: JobResult) -> Path:
    return atomic_write_text(Path(run_dir) / RESULT_FILE, json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")


def read_result(run_dir: Path) -> JobResult | None:
    """The run's recorded result, or None when it never recorded one."""
    path = Path(run_dir) / RESULT_FILE
    return JobResult(**json.loads(path.read_text())) if path.is_file() else None


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun (a sweep or a search), False in a single run or a plain call."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_rank_zero() -> bool:
    # Under DDP every rank runs `main`; the metrics are already reduced across ranks, so one writer suffices.
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def run_recorded(train: Callable[[DictConfig], dict[str, float]], cfg: DictConfig) -> dict[str, float] | None:
    """`train(cfg)`, its outcome written to `result.json`; the final metrics, or None for a sweep job that failed
    (one line on stderr; a crash's trace also in the job's log). Outside a sweep an exception is raised again."""
    run_dir = Path(cfg.paths.output_dir)
    try:
        metrics = train(cfg)
    except (KeyboardInterrupt, SystemExit) as interruption:  # Ctrl-C (Lightning exits 1 after it), SIGTERM
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from vae_lab.resume import CHECKPOINT

        sigterm = isinstance(interruption, SIGTERMException)  # a SystemExit with no code: it would exit 0
        if isinstance(interruption, SystemExit) and not sigterm and not interruption.code:
            raise
        name = "SIGTERM" if sigterm else "SIGINT (Ctrl-C)"
        if is_rank_zero():
            write_result(run_dir, JobResult(INTERRUPTED, error=f"stopped by {name}"))
            target = Path(HydraConfig.get().sweep.dir) if in_sweep() else run_dir
            hint = (f"interrupted by {name}; continue with: python -m vae_lab.train resume={target}"
                    if (run_dir / CHECKPOINT).is_file() else
                    f"interrupted by {name} before its first epoch ended: {run_dir} has nothing to resume yet.")
            print(hint, file=sys.stderr, flush=True)
        # The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).
        raise SystemExit(128 + (signal.SIGTERM if sigterm else signal.SIGINT)) from interruption
    except Exception as error:
        message = str(error) if isinstance(error, VaeLabError) else f"{type(error).__name__}: {error}"
        write_result(run_dir, JobResult(FAILED, error=message))
        if not in_sweep():
            raise
        if not isinstance(error, VaeLabError):  # a crash, not a user's mistake: its trace goes to this job's log
            log.exception("sweep job %s crashed", HydraConfig.get().job.num)
        print(f"error: sweep job {HydraConfig.get().job.num} failed, the others go on: {message}", file=sys.stderr)
        return None
    if is_rank_zero():
        write_result(run_dir, JobResult(COMPLETED, metrics=metrics))
    return metrics


class SweepSummary(Callback):
    """At the end of a sweep: one line per job that did not complete (stderr), then the closing block: the counts,
    the best job and its final metrics, the report command and the TensorBoard command for every job."""

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        from vae_lab.console import print_end_block
        from vae_lab.report import METRIC, ranked
        from vae_lab.sweep_jobs import find_jobs, sweep_counts, swept_keys

        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = find_jobs(sweep_dir)
        keys = swept_keys(jobs)
        not_completed = [job for job in jobs if job.status != COMPLETED]
        for job in not_completed:
            print(f"  {job.status}: {job.label(keys)}: {job.error}", file=sys.stderr)
        metric = config.get("optimized_metric") or METRIC
        best = next((job for job in ranked(jobs, metric) if job.status == COMPLETED and metric in job.metrics), None)
        best_by = f"; best by {metric}: {best.label(keys)}" if best else ""
        print_end_block(f"sweep {sweep_dir}: {sweep_counts(jobs)}{best_by}", best.metrics if best else None,
                        notes=[f"report: python -m vae_lab.report {sweep_dir}"], logdir=sweep_dir)
        if not_completed:
            # SystemExit passes through Hydra's callback guard (which catches Exception) and sets the exit code.
            raise SystemExit(1)
