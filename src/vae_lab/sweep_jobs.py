"""What run and sweep folders hold: one folder per job, each with Hydra's `.hydra/` record and a `result.json`.

A job is any folder with `.hydra/overrides.yaml`: a single run (`outputs/<date>/<time>/`) or one job of a sweep
(`multirun/<date>/<time>/<job number>/`). The file lists the job's command-line overrides, including the values
the sweeper chose for it; the swept keys of a set of jobs are the keys whose values differ between them (or that
the Optuna sweeper searched over, when a sweep has a single trial). Jobs whose swept values agree on everything but
`seed` are repeats of one setting: a seed group.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from omegaconf import OmegaConf

from vae_lab.job_result import COMPLETED, FAILED, INTERRUPTED, JobResult, read_result

UNFINISHED = "unfinished"  # no result.json: the job crashed hard, was killed, or is still running
NO_RESULT = "no result.json: the job crashed, was killed or is still running"
EVALUATE_FILE = "metrics.json"
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

    @cached_property
    def metrics(self) -> dict[str, float]:
        """Its final metrics (result.json), and those `vae_lab.evaluate` wrote beside its checkpoints, if it ran."""
        return {**(self.result.metrics if self.result else {}), **evaluated_metrics(self.dir)}

    @property
    def error(self) -> str | None:
        return self.result.error if self.result else NO_RESULT

    def label(self, keys: list[str]) -> str:
        """`job 1 (model.latent_dim=4)`: the job's name and its values of `keys`."""
        values = setting(self, keys)
        return f"job {self.name} ({values})" if values else f"job {self.name}"


def evaluated_metrics(job_dir: Path) -> dict[str, float]:
    """The numbers in `<job>/checkpoints/metrics.json` (what `vae_lab.evaluate ckpt_path=<job>/checkpoints/...`
    writes by default): `test/iwae` with k = 5000 and the active units, say, beside the run's own final metrics."""
    path = job_dir / "checkpoints" / EVALUATE_FILE
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):  # half-written by an evaluation still running, or unreadable: not a result
        return {}
    return {name: value for name, value in values.items()
            if name.startswith("test/") and isinstance(value, int | float) and not isinstance(value, bool)}


def find_jobs(*folders: Path) -> list[SweepJob]:
    """Every job in or below `folders` (a run, a sweep, a folder of runs or sweeps), ordered by folder and job number.

    A key that some jobs override and others do not (single runs started with different options) is filled in for
    the others from their `.hydra/config.yaml` (or their config-group choice), so every job has a value for it.
    """
    job_dirs = sorted({path.parent.parent.resolve() for folder in folders for path in _overrides_files(Path(folder))})
    if not job_dirs:
        return []
    root = Path(os.path.commonpath(job_dirs)) if len(job_dirs) > 1 else job_dirs[0].parent
    jobs = []
    for job_dir in job_dirs:
        hydra_file = job_dir / ".hydra" / "hydra.yaml"
        num = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.job.num") if hydra_file.is_file() else None
        jobs.append(
            SweepJob(
                name=job_dir.relative_to(root).as_posix(),
                dir=job_dir,
                overrides=parse_overrides(OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra/overrides.yaml"))),
                result=read_result(job_dir),
                num=int(num) if num is not None else 0,
            )
        )
    jobs.sort(key=lambda job: (job.dir.parent.as_posix(), job.num, job.name))
    return _fill_missing_overrides(jobs)


def _overrides_files(folder: Path) -> list[Path]:
    own = folder / ".hydra" / "overrides.yaml"
    return [own] if own.is_file() else list(folder.glob("**/.hydra/overrides.yaml"))


def _fill_missing_overrides(jobs: list[SweepJob]) -> list[SweepJob]:
    keys = {key for job in jobs for key in job.overrides}
    filled = []
    for job in jobs:
        missing = [key for key in keys if key not in job.overrides]
        if missing:
            found = {key: _config_value(job.dir, key) for key in missing}
            job = SweepJob(job.name, job.dir, {**job.overrides, **found}, job.result, job.num)
        filled.append(job)
    return filled


def _config_value(job_dir: Path, key: str) -> str:
    """The job's value of `key` as an override would spell it: from its config, else its config-group choice."""
    config_file, hydra_file = job_dir / ".hydra" / "config.yaml", job_dir / ".hydra" / "hydra.yaml"
    if config_file.is_file():
        try:
            value = OmegaConf.select(OmegaConf.load(config_file), key, default=_ABSENT)
        except Exception:  # an interpolation only Hydra can resolve, like ${hydra:runtime.output_dir}
            value = _ABSENT
        if value is not _ABSENT and not OmegaConf.is_config(value):
            return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if hydra_file.is_file():
        choice = OmegaConf.select(OmegaConf.load(hydra_file), f"hydra.runtime.choices.{key}")
        if choice is not None:
            return str(choice)
    return ""


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`["++trainer.max_epochs=1", "model=cvae"]` -> `{"trainer.max_epochs": "1", "model": "cvae"}`."""
    parsed = {}
    for override in overrides:
        key, _, value = override.partition("=")
        parsed[key.lstrip("+~")] = value
    return parsed


def swept_keys(jobs: list[SweepJob], searched: list[str] = ()) -> list[str]:
    """Override keys whose values differ between jobs, plus `searched` keys (an Optuna search space)."""
    keys: list[str] = []
    for job in jobs:
        keys += [key for key in job.overrides if key not in keys]
    varying = [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]
    return varying + [key for key in searched if key in keys and key not in varying]


def searched_keys(jobs: list[SweepJob]) -> list[str]:
    """The sweeper's search-space keys (`hydra.sweeper.params`, e.g. Optuna's), from a job's `.hydra/hydra.yaml`."""
    hydra_file = jobs[0].dir / ".hydra" / "hydra.yaml" if jobs else None
    if hydra_file is None or not hydra_file.is_file():
        return []
    params = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.sweeper.params")
    return list(params.keys()) if params else []


def seed_groups(jobs: list[SweepJob], keys: list[str]) -> dict[tuple[str, ...], list[SweepJob]]:
    """Jobs by their values of `keys` (the swept keys but `seed`), in the order each setting first appears."""
    groups: dict[tuple[str, ...], list[SweepJob]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.overrides.get(key, "") for key in keys), []).append(job)
    return groups


def setting(job: SweepJob, keys: list[str]) -> str:
    """`model.latent_dim=2 model.lr=0.001`: the job's values of `keys`."""
    return " ".join(f"{key}={job.overrides[key]}" for key in keys if key in job.overrides)


def sweep_counts(jobs: list[SweepJob]) -> str:
    """`3 jobs: 2 completed, 1 failed`."""
    statuses = (COMPLETED, FAILED, INTERRUPTED, UNFINISHED)
    counts = {status: sum(job.status == status for job in jobs) for status in statuses}
    parts = [f"{count} {status}" for status, count in counts.items() if count]
    return f"{len(jobs)} job{'s' * (len(jobs) != 1)}: " + ", ".join(parts)
