"""A run's outcome, `<run dir>/result.json`, as runs write it and as sweeps and reports read it back.

`result.json` holds the status (`completed` with the final metrics, `failed` with the error, `interrupted` by
Ctrl-C or SIGTERM); a run folder without it crashed hard, was killed (SIGKILL) or is still running. The sweep
summary, `vae_lab.report` and a resumed sweep read only this file, so a job is never judged from half-written
TensorBoard events. Inside a sweep (`-m`, an Optuna search) an error fails only its own job: raising it would end
every job still to come (all of them, with Hydra's in-process launcher), so the job records its failure and
returns; `SweepSummary`, a Hydra callback, then makes the sweep exit non-zero. A job, read back, is any folder
with `.hydra/overrides.yaml`: a run (`outputs/<date>/<time>/`) or a sweep's job (`multirun/<date>/<time>/<num>/`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vae_lab.atomic_files import atomic_write_text
from vae_lab.errors import VaeLabError

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"
CHECKPOINT = Path("checkpoints") / "last.ckpt"  # what resume= and a sweep job continue
METRIC = "val/elbo"  # what sweeps are ranked by, unless told otherwise
# The last part of a metric's name (`val/kl` -> `kl`) for which lower is better: a KL (the rate), a loss, a negative
# log-likelihood, bits per dimension. Durations (`perf/val_s`) and standard errors (`test/iwae_se`) are lower-better
# too; rates (`perf/train_images_per_s`) and everything else, the ELBO, IWAE bound and reconstruction
# log-likelihood (`recon`) first, are higher-better.
LOWER_IS_BETTER = ("kl", "loss", "nll", "bpd")
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"
UNFINISHED = "unfinished"  # no result.json
SEED = "seed"  # the key whose values repeat a setting rather than change it
_ABSENT = object()


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


@dataclass(frozen=True)
class SweepJob:
    name: str  # its folder relative to the folders' common parent: "3" in one sweep, "07-52-42-140192/3" in several
    dir: Path
    overrides: dict[str, str]  # override key (without +/++) -> value as written, e.g. "model.latent_dim" -> "2"
    result: JobResult | None
    num: int = 0  # Hydra's job number within its sweep (0 for a single run)

    @property
    def status(self) -> str:
        return self.result.status if self.result else UNFINISHED

    @property
    def error(self) -> str | None:
        return self.result.error if self.result else "no result.json: the job crashed, was killed or is still running"

    @cached_property
    def metrics(self) -> dict[str, float]:
        """Its final metrics, and the `test/` numbers of `<job>/checkpoints/metrics.json`, which
        `vae_lab.evaluate ckpt_path=<job>/checkpoints/...` writes (`test/iwae` with k = 5000, say), if it ran."""
        try:
            evaluated = json.loads((self.dir / "checkpoints" / "metrics.json").read_text())
        except (OSError, ValueError):  # none, or half-written by an evaluation still running: not a result
            evaluated = {}
        return {**(self.result.metrics if self.result else {}), **{
            name: value for name, value in evaluated.items()
            if name.startswith("test/") and isinstance(value, int | float) and not isinstance(value, bool)}}

    def label(self, keys: list[str]) -> str:
        """`job 1 (model.latent_dim=4)`: the job's name and its values of `keys`."""
        values = setting(self, keys)
        return f"job {self.name} ({values})" if values else f"job {self.name}"


def find_jobs(*folders: Path) -> list[SweepJob]:
    """Every job in or below `folders` (a run, a sweep, a folder of runs or sweeps), ordered by folder and job number.

    A key that some jobs override and others do not (single runs started with different options) is filled in for
    the others from their `.hydra/config.yaml` (or their config-group choice), so every job has a value for it.
    """
    job_dirs = sorted({path.parent.parent.resolve() for folder in folders
                       for path in Path(folder).glob("**/.hydra/overrides.yaml")})
    if not job_dirs:
        return []
    root = Path(os.path.commonpath(job_dirs)) if len(job_dirs) > 1 else job_dirs[0].parent
    overrides = {job_dir: parse_overrides(OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra/overrides.yaml")))
                 for job_dir in job_dirs}  # to_container: as written, ${...} unresolved
    keys = dict.fromkeys(key for found in overrides.values() for key in found)
    jobs = []
    for job_dir, found in overrides.items():
        hydra_file = job_dir / ".hydra" / "hydra.yaml"
        hydra = OmegaConf.load(hydra_file) if hydra_file.is_file() else OmegaConf.create()
        num = OmegaConf.select(hydra, "hydra.job.num")
        filled = {key: _config_value(job_dir, hydra, key) for key in keys if key not in found}
        jobs.append(SweepJob(job_dir.relative_to(root).as_posix(), job_dir, {**found, **filled}, read_result(job_dir),
                             int(num) if num is not None else 0))
    return sorted(jobs, key=lambda job: (job.dir.parent.as_posix(), job.num, job.name))


def _config_value(job_dir: Path, hydra: DictConfig, key: str) -> str:
    """The job's value of `key` as an override would spell it: from its config, else its config-group choice."""
    try:
        value = OmegaConf.select(OmegaConf.load(job_dir / ".hydra" / "config.yaml"), key, default=_ABSENT)
    except Exception:  # no config, or an interpolation only Hydra can resolve, like ${hydra:runtime.output_dir}
        value = _ABSENT
    if value is not _ABSENT and not OmegaConf.is_config(value):
        return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    choice = OmegaConf.select(hydra, f"hydra.runtime.choices.{key}")
    return "" if choice is None else str(choice)


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`["++trainer.max_epochs=1", "model=cvae"]` -> `{"trainer.max_epochs": "1", "model": "cvae"}`."""
    return {key.lstrip("+~"): value for key, _, value in (override.partition("=") for override in overrides)}


def swept_keys(jobs: list[SweepJob], searched: list[str] | None = None) -> list[str]:
    """Override keys whose values differ between jobs, plus the `searched` keys (default: the sweeper's search
    space, `hydra.sweeper.params` in a job's `.hydra/hydra.yaml`, e.g. Optuna's)."""
    if searched is None and jobs and (jobs[0].dir / ".hydra" / "hydra.yaml").is_file():
        searched = list(OmegaConf.select(OmegaConf.load(jobs[0].dir / ".hydra" / "hydra.yaml"),
                                         "hydra.sweeper.params", default=None) or [])
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    varying = [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]
    return varying + [key for key in searched or () if key in keys and key not in varying]


def setting(job: SweepJob, keys: list[str]) -> str:
    """`model.latent_dim=2 model.lr=0.001`: the job's values of `keys`."""
    return " ".join(f"{key}={job.overrides[key]}" for key in keys if key in job.overrides)


def sweep_counts(jobs: list[SweepJob]) -> str:
    """`3 jobs: 2 completed, 1 failed`."""
    statuses = (COMPLETED, FAILED, INTERRUPTED, UNFINISHED)
    parts = [f"{count} {status}" for status in statuses if (count := sum(job.status == status for job in jobs))]
    return f"{len(jobs)} job{'s' * (len(jobs) != 1)}: " + ", ".join(parts)


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` ranks first (see LOWER_IS_BETTER)."""
    name = metric.rsplit("/", 1)[-1]
    return name.endswith("_se") or "_per_" not in name and (name.endswith("_s") or name in LOWER_IS_BETTER)


def stats(jobs: list[SweepJob], metric: str) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n - 1 in the denominator; nan below 2 values) and n of `metric` over the
    completed jobs with a finite value (a failed or diverged seed counts in a setting's jobs, not in its n)."""
    values = [job.metrics.get(metric, math.nan) for job in jobs if job.status == COMPLETED]
    values = [value for value in values if math.isfinite(value)]
    mean = statistics.fmean(values) if values else math.nan
    return mean, statistics.stdev(values) if len(values) > 1 else math.nan, len(values)


def ranked(items: list, metric: str) -> list:
    """Jobs, or settings (lists of jobs), by their mean finite `metric`, best first (an ELBO: highest; a KL: lowest);
    those without one last, in their order."""
    sign = 1 if lower_is_better(metric) else -1

    def key(item: SweepJob | list[SweepJob]) -> float:
        mean = stats(item if isinstance(item, list) else [item], metric)[0]
        return math.inf if math.isnan(mean) else sign * mean  # sorted() is stable: the others keep their order

    return sorted(items, key=key)


class SweepSummary(Callback):
    """At the end of a sweep: one line per job that did not complete (stderr), then the closing block: the counts,
    the best job and its final metrics, the report command and the TensorBoard command for every job."""

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        from vae_lab.console import print_end_block

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
