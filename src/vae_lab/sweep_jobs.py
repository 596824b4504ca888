"""What run and sweep folders hold: one folder per job, each with Hydra's `.hydra/` record and a `result.json`.

A job is any folder with `.hydra/overrides.yaml`: a single run (`outputs/<date>/<time>/`) or one job of a sweep
(`multirun/<date>/<time>/<job number>/`). The swept keys of a set of jobs are the override keys whose values
differ between them (or that the Optuna sweeper searched over, when a sweep has a single trial).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vae_lab.sweep_outcome import COMPLETED, FAILED, INTERRUPTED, JobResult, read_result

UNFINISHED = "unfinished"  # no result.json: the job crashed, was killed, or is still running
SEED = "seed"  # the key whose values repeat a setting rather than change it
_ABSENT = object()


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
    overrides = {job_dir: parse_overrides(OmegaConf.load(job_dir / ".hydra/overrides.yaml")) for job_dir in job_dirs}
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
