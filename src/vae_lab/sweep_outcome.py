"""A run's outcome in `<run dir>/result.json`: `completed` with the final metrics, `failed` with the error, or
`interrupted` (Ctrl-C, SIGTERM); none if it crashed hard, was killed or still runs. In a sweep an error fails only its
own job (raising it would end every job still to come), and `SweepSummary` makes the sweep exit non-zero."""

from __future__ import annotations

import json
import logging
import os
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
CHECKPOINT = Path("checkpoints") / "last.ckpt"  # what resume= and a sweep job continue
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"


@dataclass(frozen=True)
class JobResult:
    status: str  # COMPLETED, FAILED or INTERRUPTED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def write_result(run_dir: Path, result: JobResult) -> Path:
    return atomic_write_text(Path(run_dir) / RESULT_FILE, json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")


def read_result(run_dir: Path) -> JobResult | None:
    path = Path(run_dir) / RESULT_FILE
    return JobResult(**json.loads(path.read_text())) if path.is_file() else None


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_rank_zero() -> bool:  # under DDP every rank runs `main` (one writer); Lightning, torchrun and SLURM set these
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def run_recorded(train: Callable[[DictConfig], dict[str, float]], cfg: DictConfig) -> dict[str, float] | None:
    """`train(cfg)`, its outcome written to `result.json`; the final metrics, or None for a sweep job that failed
    (one line on stderr, a crash's trace in the job's log). Outside a sweep the exception is raised again."""
    run_dir = Path(cfg.paths.output_dir)
    try:
        metrics = train(cfg)
    except (KeyboardInterrupt, SystemExit) as interruption:  # Ctrl-C (Lightning exits 1 after it), SIGTERM
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        sigterm = isinstance(interruption, SIGTERMException)  # a SystemExit with no code: it would exit 0
        if isinstance(interruption, SystemExit) and not sigterm and not interruption.code:
            raise
        name = "SIGTERM" if sigterm else "SIGINT (Ctrl-C)"
        if is_rank_zero():
            write_result(run_dir, JobResult(INTERRUPTED, error=f"stopped by {name}"))
            target = Path(HydraConfig.get().sweep.dir) if in_sweep() else run_dir
            hint = (f"; continue with: python -m vae_lab.train resume={target}" if (run_dir / CHECKPOINT).is_file()
                    else f" before its first epoch ended: {run_dir} has nothing to resume yet.")
            print(f"interrupted by {name}{hint}", file=sys.stderr, flush=True)
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
    """At a sweep's end: a line per job that did not complete (stderr), then the counts, the best job, its metrics
    and the report command; exit code 1 if a job did not complete."""

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        from vae_lab.console import print_end_block
        from vae_lab.report import METRIC, find_jobs, ranked, sweep_counts, swept_keys  # the report reads jobs

        sweep_dir, metric = Path(config.hydra.sweep.dir), config.get("optimized_metric") or METRIC
        jobs = find_jobs(sweep_dir)
        keys = swept_keys(jobs)
        not_completed = [job for job in jobs if job.status != COMPLETED]
        for job in not_completed:
            print(f"  {job.status}: {job.label(keys)}: {job.error}", file=sys.stderr)
        best = next((job for job in ranked(jobs, metric) if job.status == COMPLETED and metric in job.metrics), None)
        best_by = f"; best by {metric}: {best.label(keys)}" if best else ""
        print_end_block(f"sweep {sweep_dir}: {sweep_counts(jobs)}{best_by}", best.metrics if best else None,
                        notes=[f"report: python -m vae_lab.report {sweep_dir}"], logdir=sweep_dir)
        if not_completed:
            raise SystemExit(1)  # passes Hydra's callback guard (which catches Exception)
