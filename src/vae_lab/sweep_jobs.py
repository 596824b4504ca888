"""What a sweep directory holds: one folder per job, each with Hydra's `.hydra/` record and a `result.json`.

`multirun/<date>/<time>/<job number>/.hydra/overrides.yaml` lists the job's command-line overrides, including
the values the sweeper chose for it; the swept keys of a sweep are the override keys whose values differ
between its jobs (or that the Optuna sweeper searched over, when a sweep has a single trial).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from vae_lab.job_result import COMPLETED, FAILED, JobResult, read_result

UNFINISHED = "unfinished"  # no result.json: the job crashed hard, was killed, or is still running
NO_RESULT = "no result.json: the job crashed, was killed or is still running"


@dataclass(frozen=True)
class SweepJob:
    num: int
    dir: Path
    overrides: dict[str, str]  # override key (without +/++) -> value as written, e.g. "model.latent_dim" -> "2"
    result: JobResult | None

    @property
    def status(self) -> str:
        return self.result.status if self.result else UNFINISHED

    @property
    def metrics(self) -> dict[str, float]:
        return self.result.metrics if self.result else {}

    @property
    def error(self) -> str | None:
        return self.result.error if self.result else NO_RESULT

    def label(self, keys: list[str]) -> str:
        """`job 1 (model.latent_dim=4)`: the job number and its values of `keys`."""
        values = " ".join(f"{key}={self.overrides[key]}" for key in keys if key in self.overrides)
        return f"job {self.num} ({values})" if values else f"job {self.num}"


def find_jobs(sweep_dir: Path) -> list[SweepJob]:
    """Every job folder of `sweep_dir` (a folder with `.hydra/overrides.yaml`), ordered by job number."""
    jobs = []
    for overrides_file in Path(sweep_dir).glob("*/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        hydra_file = overrides_file.with_name("hydra.yaml")
        num = OmegaConf.load(hydra_file).hydra.job.num if hydra_file.is_file() else None
        jobs.append(
            SweepJob(
                num=int(num if num is not None else job_dir.name),
                dir=job_dir,
                overrides=parse_overrides(OmegaConf.to_container(OmegaConf.load(overrides_file))),
                result=read_result(job_dir),
            )
        )
    return sorted(jobs, key=lambda job: job.num)


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


def sweep_counts(jobs: list[SweepJob]) -> str:
    """`3 jobs: 2 completed, 1 failed`."""
    counts = {status: sum(job.status == status for job in jobs) for status in (COMPLETED, FAILED, UNFINISHED)}
    parts = [f"{count} {status}" for status, count in counts.items() if count]
    return f"{len(jobs)} job{'s' * (len(jobs) != 1)}: " + ", ".join(parts)
