"""`python -m vae_lab.report FOLDER...`: one table and one figure that compare runs, a sweep's jobs, or several sweeps.

Each FOLDER is a run (`outputs/<date>/<time>`), a sweep (`multirun/<date>/<time>`), or a folder of either, as
many as you like (`outputs/2026-12-01/*`). Writes into the folder (with several, into their common parent; or `--out`):
- `report.csv` and `report.md`: one row per job (its swept values, status, final metrics from its
  `result.json`), completed jobs sorted by `val/elbo` (best first), then the failed and unfinished ones, with
  their error, so no job silently drops out; `report.md` also names the best job and, after an Optuna search,
  the sweeper's own best trial (`optimization_results.yaml`).
- When `seed` is swept: `report.csv` has one row per setting of the other swept keys with the mean, sample
  standard deviation and n (completed jobs with a finite value) of every final metric; `jobs.csv` and the end of
  `report.md` keep the table of jobs.
- `report.png`: the final `val/elbo` against each swept value (group means with ±1 sd error bars over seeds),
  and the `val/elbo` curve of every job (over seeds: the mean, with a ±1 sd band), from its TensorBoard events
  or, without them, its CSV log.
- `rate_distortion.png` when `model.beta` or `model.latent_dim` is swept: rate R = KL against distortion
  D = -recon of every job (Alemi et al., 2018), test metrics when every job has them, else validation metrics.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vae_lab.atomic_files import atomic_write_text, check_writable
from vae_lab.errors import VaeLabError, print_error
from vae_lab.job_result import COMPLETED
from vae_lab.report_figures import number_or_none, plot_groups, plot_jobs, plot_rate_distortion
from vae_lab.sweep_jobs import (
    SEED,
    SweepJob,
    find_jobs,
    searched_keys,
    seed_groups,
    setting,
    sweep_counts,
    swept_keys,
)

METRIC = "val/elbo"
OPTUNA_RESULTS = "optimization_results.yaml"
RATE_DISTORTION_KEYS = ("model.beta", "model.latent_dim")
# The last part of a metric's name (`val/kl` -> `kl`) for which lower is better: a KL (the rate), a loss, a negative
# log-likelihood, bits per dimension. Durations (`perf/val_s`) and standard errors (`test/iwae_se`) are lower-better
# too; rates (`perf/train_images_per_s`) and everything else, the ELBO, IWAE bound and reconstruction
# log-likelihood (`recon`) first, are higher-better.
LOWER_IS_BETTER = ("kl", "loss", "nll", "bpd")

Group = tuple[tuple[str, ...], list[SweepJob]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_lab.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="FOLDER",
                        help="runs or sweeps, e.g. multirun/2026-01-31/12-00-00-123456 or outputs/2026-01-31/*")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the report (default: the folder, or the folders' common parent)")
    parser.add_argument("--metric", default=METRIC,
                        help=f"the metric to sort and plot by, best first (default: {METRIC})")
    parser.add_argument("--columns", default=None, metavar="NAME,NAME",
                        help="the metrics to show after --metric, in this order (default: every recorded one)")
    args = parser.parse_args(argv)
    try:
        columns = args.columns.split(",") if args.columns else None
        written = write_report(args.folders, args.out, args.metric, columns)
    except VaeLabError as error:
        print_error(error)
        return 1
    print("\n".join(str(path) for path in written))
    return 0


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` ranks first (see LOWER_IS_BETTER)."""
    name = metric.rsplit("/", 1)[-1]
    if name.endswith("_se"):
        return True
    if "_per_" in name:  # a throughput: images per second
        return False
    return name.endswith("_s") or name in LOWER_IS_BETTER


def order_word(metric: str) -> str:
    return "best first (lower is better)" if lower_is_better(metric) else "best first (higher is better)"


def write_report(folders: Path | Sequence[Path], out_dir: Path | None = None, metric: str = METRIC,
                 shown: Sequence[str] | None = None) -> list[Path]:
    """Write the report of the jobs in or below `folders` into `out_dir`; return the paths written.

    `shown`: the metrics shown after `metric` (default: every metric a job recorded, alphabetically).
    """
    folders = [Path(folders)] if isinstance(folders, str | Path) else [Path(folder) for folder in folders]
    for folder in folders:
        if not folder.is_dir():
            raise VaeLabError(
                f"{folder} is not a folder; pass a run folder (outputs/<date>/<time>) or the folder a sweep "
                "printed at its end, like multirun/2026-01-31/12-00-00-123456."
            )
    jobs = find_jobs(*folders)
    if not jobs:
        raise VaeLabError(
            f"{' '.join(map(str, folders))} holds no sweep jobs or runs (no .hydra/overrides.yaml in it or below it); "
            "pass a run folder (outputs/<date>/<time>) or the folder a sweep printed at its end, like "
            "multirun/2026-01-31/12-00-00-123456."
        )
    recorded = sorted({name for job in jobs for name in job.metrics})
    if recorded and metric not in recorded:
        lower = [name for name in recorded if lower_is_better(name)]
        raise VaeLabError(f"--metric {metric} is not among the metrics the jobs recorded; use one of "
                          f"{', '.join(recorded)} (ranked lower first: {', '.join(lower) or 'none'}; "
                          "the others higher first).")
    unknown = [name for name in shown or () if name not in recorded]
    if unknown:
        raise VaeLabError(f"--columns {','.join(unknown)}: no job recorded {'it' if len(unknown) == 1 else 'them'}; "
                          f"use names from {', '.join(recorded)}.")
    keys = swept_keys(jobs, searched_keys(jobs))
    in_folder_order, jobs = jobs, ranked(jobs, metric)
    out_dir = Path(out_dir or (folders[0] if len(folders) == 1 else os.path.commonpath([f.resolve() for f in folders])))
    check_writable(out_dir)  # one sentence for a read-only or full folder, before reading every job
    names = [metric, *[name for name in shown if name != metric]] if shown else metric_names(jobs, metric)
    columns = ["job", "status", *keys, *names, "error", "dir"]
    rows = [job_row(job, out_dir) for job in jobs]
    title = f"`{folders[0]}`" if len(folders) == 1 else f"{len(folders)} folders under `{out_dir}`"
    written = [out_dir / "report.csv", out_dir / "report.md", out_dir / "report.png"]
    if SEED in keys:
        group_keys = [key for key in keys if key != SEED]
        groups = ranked_groups(seed_groups(in_folder_order, group_keys), metric)
        group_columns = [*group_keys, "jobs", "seeds", *[f"{name}_{part}" for name in names for part in STATS]]
        write_csv(written[0], group_columns, [group_row(group, group_keys, names) for group in groups])
        written.insert(1, out_dir / "jobs.csv")
        write_csv(written[1], columns, rows)
        text = group_markdown(title, jobs, groups, group_keys, names, metric)
        text += "\n## Jobs\n\n" + table(columns, rows)
    else:
        group_keys, groups = keys, None
        write_csv(written[0], columns, rows)
        text = markdown(title, folders, jobs, keys, columns, rows, metric)
    if groups is None:
        plot_jobs(written[-1], jobs, keys, metric)
    else:
        plot_groups(written[-1], jobs, groups, group_keys, metric)
    if any(key in keys for key in RATE_DISTORTION_KEYS):
        rate_distortion = out_dir / "rate_distortion.png"
        stage = plot_rate_distortion(rate_distortion, jobs, group_keys)
        if stage:
            written.append(rate_distortion)
            text += (f"\nRate–distortion: `{rate_distortion.name}` (rate = `{stage}/kl`, distortion = "
                     f"−`{stage}/recon`, one point per completed job).\n")
    atomic_write_text(written[written.index(out_dir / "report.md")], text)
    return written


def ranked(jobs: list[SweepJob], metric: str) -> list[SweepJob]:
    """Completed jobs by `metric`, best first (an ELBO: highest; a KL: lowest), then the others in folder order."""
    return _best_first(jobs, metric, lambda job: [job])  # a job ranks as a seed group of one


def metric_names(jobs: list[SweepJob], metric: str) -> list[str]:
    """`metric` first, then every other final metric any job recorded, alphabetically."""
    names = sorted({name for job in jobs for name in job.metrics} - {metric})
    return [metric, *names]


def job_row(job: SweepJob, out_dir: Path) -> dict[str, object]:
    row: dict[str, object] = {"job": job.name, "status": job.status, **job.overrides, **job.metrics}
    row["error"] = job.error or ""
    out_dir = out_dir.resolve()
    row["dir"] = job.dir.relative_to(out_dir).as_posix() if job.dir.is_relative_to(out_dir) else str(job.dir)
    return row


STATS = ("mean", "sd", "n")


def summary(values: list[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (n - 1 in the denominator; nan for fewer than 2 values) and n."""
    mean = statistics.fmean(values) if values else math.nan
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return mean, sd, len(values)


def finite_values(jobs: list[SweepJob], metric: str) -> list[float]:
    """`metric` of the completed jobs that recorded a finite value (a diverged seed counts in `jobs`, not in n)."""
    values = [job.metrics.get(metric, math.nan) for job in jobs if job.status == COMPLETED]
    return [value for value in values if math.isfinite(value)]


def ranked_groups(groups: dict[tuple[str, ...], list[SweepJob]], metric: str) -> list[Group]:
    """Seed groups by the mean of `metric`, best first; groups without a finite value last."""
    return _best_first(list(groups.items()), metric, lambda group: group[1])


def _best_first(items: list, metric: str, jobs_of: Callable[[Any], list[SweepJob]]) -> list:
    """`items` by the mean finite `metric` of their completed jobs, best first; those without one last, in order."""
    sign = 1 if lower_is_better(metric) else -1

    def key(indexed: tuple[int, Any]) -> tuple[int, float, int]:
        index, item = indexed
        mean = summary(finite_values(jobs_of(item), metric))[0]
        return (1, 0.0, index) if math.isnan(mean) else (0, sign * mean, index)

    return [item for _, item in sorted(enumerate(items), key=key)]


def group_row(group: Group, group_keys: list[str], names: list[str]) -> dict[str, object]:
    values, jobs = group
    row: dict[str, object] = dict(zip(group_keys, values, strict=True))
    row["jobs"] = len(jobs)
    row["seeds"] = " ".join(job.overrides.get(SEED, "") for job in jobs)
    for name in names:
        mean, sd, n = summary(finite_values(jobs, name))
        row |= {f"{name}_mean": "" if n == 0 else mean, f"{name}_sd": "" if n < 2 else sd, f"{name}_n": n}
    return row


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def markdown(
    title: str,
    folders: list[Path],
    jobs: list[SweepJob],
    keys: list[str],
    columns: list[str],
    rows: list[dict[str, object]],
    metric: str,
) -> str:
    lines = [f"# Sweep report: {title}", "", f"{sweep_counts(jobs)}. Sorted by `{metric}`, {order_word(metric)}.", ""]
    best = jobs[0]
    if best.status == COMPLETED and metric in best.metrics:
        lines += [f"Best: {best.label(keys)}, `{metric}` = {best.metrics[metric]:.5g}.", ""]
    optuna_file = folders[0] / OPTUNA_RESULTS
    if len(folders) == 1 and optuna_file.is_file():
        found = OmegaConf.load(optuna_file)
        params = ", ".join(f"{key}={value}" for key, value in found.get("best_params", {}).items())
        lines += [f"Optuna's best trial ({OPTUNA_RESULTS}): {params}, value = {found.get('best_value')}.", ""]
    return "\n".join(lines) + "\n" + table(columns, rows)


def group_markdown(
    title: str, jobs: list[SweepJob], groups: list[Group], group_keys: list[str], names: list[str], metric: str
) -> str:
    seeds = sorted({job.overrides.get(SEED, "") for job in jobs}, key=lambda seed: (number_or_none(seed) is None, seed))
    lines = [
        f"# Sweep report: {title}", "",
        f"{sweep_counts(jobs)}. {len(groups)} setting{'s' * (len(groups) != 1)} of "
        f"{', '.join(f'`{key}`' for key in group_keys) or 'the other keys'}, each over seeds {', '.join(seeds)}: "
        "mean ± sample standard deviation over the n completed jobs with a finite value (a cell's own n is shown "
        f"where it differs). Sorted by mean `{metric}`, {order_word(metric)}.", "",
    ]
    _, best_jobs = groups[0]
    mean, sd, n = summary(finite_values(best_jobs, metric))
    if n:
        chosen = setting(best_jobs[0], group_keys) or "all jobs"
        lines += [f"Best: {chosen}, `{metric}` = {_mean_sd(mean, sd)} (n = {n}).", ""]
    columns = [*group_keys, "n", *names]
    rows = []
    for values, group_jobs in groups:
        completed = sum(job.status == COMPLETED for job in group_jobs)
        row: dict[str, object] = {**dict(zip(group_keys, values, strict=True)), "n": completed}
        for name in names:
            mean, sd, n = summary(finite_values(group_jobs, name))
            row[name] = "" if n == 0 else _mean_sd(mean, sd) + (f" (n={n})" if n != completed else "")
        rows.append(row)
    return "\n".join(lines) + "\n" + table(columns, rows)


def table(columns: list[str], rows: list[dict[str, object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |")
    return "\n".join(lines) + "\n"


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.5g}" if math.isnan(sd) else f"{mean:.5g} ± {sd:.3g}"


def _cell(value: object) -> str:
    if isinstance(value, str) and len(value) > 8 and number_or_none(value) is not None:
        value = float(value)  # a sampled learning rate like 0.00018659959624904942 (exact in report.csv)
    text = f"{value:.5g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
