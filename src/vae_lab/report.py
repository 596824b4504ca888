"""`python -m vae_lab.report FOLDER...`: one table and one figure that compare runs, a sweep's jobs, or several sweeps.

Each FOLDER is a run (`outputs/<date>/<time>`), a sweep (`multirun/<date>/<time>`), or a folder of either, as
many as you like (`outputs/2026-12-01/*`). Writes into the folder (with several, into `--out DIR`, which they then need)
`report.csv` and `report.md` (a row per job, best first, then the failed and unfinished ones with their error),
`report.png` (final metric against each swept value; curves per epoch from TensorBoard events or the CSV log) and,
when `model.beta` or `model.latent_dim` is swept, `rate_distortion.png` (Alemi et al., 2018). When `seed` is swept,
the jobs that agree on every other swept key are one setting, reported as mean, sample sd and n (`jobs.csv` keeps
the jobs); without it, each job is a setting of its own. README "Report" and docs/report_and_loggers.md say more.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig, OmegaConf

from vae_lab.atomic_files import atomic_write, atomic_write_text, check_writable
from vae_lab.errors import ConfigError, VaeLabError, print_error
from vae_lab.sweep_outcome import COMPLETED, FAILED, INTERRUPTED, JobResult, read_result

METRIC = "val/elbo"  # what sweeps are ranked by, unless told otherwise
# Metric names ending so rank lower first (durations `_s` and standard errors `_se` too); the rest higher first.
LOWER_IS_BETTER = ("kl", "loss", "nll", "bpd")
SEED = "seed"  # the key whose values repeat a setting rather than change it
UNFINISHED = "unfinished"  # no result.json
_ABSENT = object()
OPTUNA_RESULTS = "optimization_results.yaml"
RATE_DISTORTION_KEYS = ("model.beta", "model.latent_dim")
MAX_LEGEND_ENTRIES = 12


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
        """Its final metrics, and the `test/` ones `vae_lab.evaluate` wrote into `<job>/checkpoints/metrics.json`."""
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
    """Every job in or below `folders`, ordered by folder and job number; a key that only some jobs override is
    filled in for the others from their `.hydra/config.yaml` (or config-group choice)."""
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
    """Override keys whose values differ between jobs, plus the `searched` ones (default: `hydra.sweeper.params`)."""
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
    """Mean, sample standard deviation (nan below 2 values) and n of `metric` over the completed jobs with a finite
    value (a failed or diverged seed counts in a setting's jobs, not in its n)."""
    values = [job.metrics.get(metric, math.nan) for job in jobs if job.status == COMPLETED]
    values = [value for value in values if math.isfinite(value)]
    mean = statistics.fmean(values) if values else math.nan
    return mean, statistics.stdev(values) if len(values) > 1 else math.nan, len(values)


def ranked(items: list, metric: str) -> list:
    """Jobs, or settings (lists of jobs), by their mean finite `metric`, best first; those without one last."""
    sign = 1 if lower_is_better(metric) else -1

    def key(item: SweepJob | list[SweepJob]) -> float:
        mean = stats(item if isinstance(item, list) else [item], metric)[0]
        return math.inf if math.isnan(mean) else sign * mean

    return sorted(items, key=key)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_lab.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="FOLDER",
                        help="runs or sweeps, e.g. multirun/2026-01-31/12-00-00-123456 or outputs/2026-01-31/*")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the report (default: the one FOLDER; needed with several)")
    parser.add_argument("--metric", default=METRIC,
                        help=f"the metric to sort and plot by, best first (default: {METRIC})")
    parser.add_argument("--columns", default=None, metavar="NAME,NAME",
                        help="the metrics to show after --metric, in this order (default: every recorded one)")
    args = parser.parse_args(argv)
    try:
        written = write_report(args.folders, args.out, args.metric, args.columns.split(",") if args.columns else None)
    except VaeLabError as error:
        print_error(error)
        return error.exit_code
    print("\n".join(str(path) for path in written))
    return 0


def write_report(folders: list[Path], out_dir: Path | None = None, metric: str = METRIC,
                 shown: Sequence[str] | None = None) -> list[Path]:
    """Write the report of the jobs in or below `folders` into `out_dir`; return the paths written.

    `shown`: the metrics shown after `metric` (default: every metric a job recorded, alphabetically).
    """
    where = ("pass a run folder (outputs/<date>/<time>) or the folder a sweep printed at its end, like "
             "multirun/2026-01-31/12-00-00-123456.")
    for folder in folders:
        if not folder.is_dir():
            raise VaeLabError(f"{folder} is not a folder; {where}")
    jobs = find_jobs(*folders)
    if not jobs:
        raise VaeLabError(f"{' '.join(map(str, folders))} holds no sweep jobs or runs (no .hydra/overrides.yaml in "
                          f"it or below it); {where}")
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
    if out_dir is None and len(folders) > 1:  # their common parent may hold a file of the user's own named report.md
        raise ConfigError(f"{len(folders)} folders make one report, which needs a folder of its own; add --out DIR "
                          "(created if missing).")
    out_dir = Path(out_dir or folders[0])
    check_writable(out_dir)  # one sentence for a read-only or full folder, before reading every job
    keys = swept_keys(jobs)
    seeded = SEED in keys
    group_keys = [key for key in keys if key != SEED]
    settings: dict[str, list[SweepJob]] = {}  # in folder order; without seeds, each job is a setting of its own
    for job in jobs:
        settings.setdefault(setting(job, group_keys) if seeded else job.name, []).append(job)
    groups = list(settings.values())
    best_first, jobs_ranked = ranked(groups, metric), ranked(jobs, metric)
    names = [metric, *[name for name in shown or recorded if name != metric]]
    columns = ["job", "status", *keys, *names, "error", "dir"]
    rows = [{"job": job.name, "status": job.status, **job.overrides, **job.metrics, "error": job.error or "",
             "dir": _relative(job.dir, out_dir)} for job in jobs_ranked]
    order = f"best first ({'lower' if lower_is_better(metric) else 'higher'} is better)"
    what = f"Sorted by `{metric}`"
    if seeded:
        seeds = ", ".join(sorted({job.overrides.get(SEED, "") for job in jobs}))
        what = (f"{len(groups)} setting{'s' * (len(groups) != 1)} of "
                f"{', '.join(f'`{key}`' for key in group_keys) or 'the other keys'}, each over seeds {seeds}: mean ± "
                "sample standard deviation over the n completed jobs with a finite value (a cell's own n is shown "
                f"where it differs). Sorted by mean `{metric}`")
    title = ", ".join(f"`{folder}`" for folder in folders)  # what was reported on, not where it was written
    lines = [f"# Sweep report: {title}", "", f"{sweep_counts(jobs)}. {what}, {order}.", ""]
    mean, sd, n = stats(best_first[0], metric)
    if n:
        best = best_first[0][0]
        best = setting(best, group_keys) or "all jobs" if seeded else best.label(keys)
        lines += [f"Best: {best}, `{metric}` = {_mean_sd(mean, sd)}{f' (n = {n})' if seeded else ''}.", ""]
    optuna_file = folders[0] / OPTUNA_RESULTS
    if len(folders) == 1 and optuna_file.is_file():
        found = OmegaConf.load(optuna_file)
        params = ", ".join(f"{key}={value}" for key, value in found.get("best_params", {}).items())
        lines += [f"Optuna's best trial ({OPTUNA_RESULTS}): {params}, value = {found.get('best_value')}.", ""]
    text = "\n".join(lines) + "\n"
    written = [out_dir / "report.csv", out_dir / "report.md", out_dir / "report.png"]
    if seeded:
        summaries, cells = setting_rows(best_first, group_keys, names)
        write_csv(written[0], list(summaries[0]), summaries)
        written.insert(1, out_dir / "jobs.csv")
        text += table([*group_keys, "n", *names], cells) + "\n## Jobs\n\n"
    write_csv(written[1 if seeded else 0], columns, rows)
    text += table(columns, rows)
    plot(written[-1], jobs, groups, group_keys, metric, seeded)
    if any(key in keys for key in RATE_DISTORTION_KEYS):
        stage = plot_rate_distortion(out_dir / "rate_distortion.png", jobs_ranked, group_keys)
        if stage:
            written.append(out_dir / "rate_distortion.png")
            text += (f"\nRate–distortion: `rate_distortion.png` (rate = `{stage}/kl`, distortion = "
                     f"−`{stage}/recon`, one point per completed job).\n")
    atomic_write_text(out_dir / "report.md", text)
    return written


def setting_rows(groups: list[list[SweepJob]], keys: list[str], names: list[str]) -> tuple[list[dict], list[dict]]:
    """Per setting: its row of report.csv (`<metric>_mean`, `_sd`, `_n`) and of report.md (`mean ± sd`, with the
    cell's n where it differs from the setting's completed jobs)."""
    summaries, cells = [], []
    for group in groups:
        values = {key: group[0].overrides.get(key, "") for key in keys}
        completed = sum(job.status == COMPLETED for job in group)
        summaries.append({**values, "jobs": len(group), "seeds": " ".join(job.overrides[SEED] for job in group)})
        cells.append({**values, "n": completed})
        for name in names:
            mean, sd, n = stats(group, name)
            summaries[-1] |= {f"{name}_mean": mean if n else "", f"{name}_sd": sd if n > 1 else "", f"{name}_n": n}
            cells[-1][name] = _mean_sd(mean, sd) + (f" (n={n})" if n != completed else "") if n else ""
    return summaries, cells


def _relative(folder: Path, out_dir: Path) -> str:
    return folder.relative_to(out_dir.resolve()).as_posix() if folder.is_relative_to(out_dir.resolve()) else str(folder)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def table(columns: list[str], rows: list[dict[str, object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.5g}" if math.isnan(sd) else f"{mean:.5g} ± {sd:.3g}"


def _cell(value: object) -> str:
    if isinstance(value, str) and len(value) > 8 and number_or_none(value) is not None:
        value = float(value)  # a sampled learning rate like 0.00018659959624904942 (exact in report.csv)
    text = f"{value:.5g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def val_curve(job_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(epochs trained, value) of `tag` from the job's TensorBoard events, else from Lightning's CSV log
    (`csv/version_N/metrics.csv`); a resumed run adds events files or the next version. Empty without either."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    points: dict[int, float] = {}
    for events_dir in sorted({path.parent for path in Path(job_dir).rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(events_dir), size_guidance={SCALARS: 0})  # 0: keep every point
        events.Reload()
        scalars = events.Tags()["scalars"]
        if tag in scalars:
            # Lightning logs `epoch` (0-based) at every step it logs a metric: after epoch e we have trained e + 1.
            epoch_at = {e.step: int(e.value) + 1 for e in events.Scalars("epoch")} if "epoch" in scalars else {}
            points |= {epoch_at.get(event.step, event.step): event.value for event in events.Scalars(tag)}
    if not points:
        for metrics_file in sorted(Path(job_dir).glob("csv/**/metrics.csv")):
            with metrics_file.open(newline="") as handle:
                points |= {int(float(row["epoch"])) + 1: float(row[tag]) for row in csv.DictReader(handle)
                           if row.get(tag) and row.get("epoch")}
    return sorted(points.items())


def plot(path: Path, jobs: list[SweepJob], groups: list[list[SweepJob]], keys: list[str], metric: str,
         seeded: bool) -> None:
    """One panel per swept key, each setting's final `metric` against its value (one line per setting of the other
    keys), and one of curves per epoch; over seeds, the mean of the completed jobs, ±1 sd as error bars and bands. A
    setting without a completed job is drawn dotted, from its other jobs."""
    fig = Figure(figsize=(4.2 * (max(len(keys), 1) + 1), 3.8))
    *finals, curves = fig.subplots(1, max(len(keys), 1) + 1, squeeze=False)[0]
    over = " (mean ± 1 sd)" if seeded else ""
    for ax, key in zip(finals, keys or [None], strict=True):
        labels = [group[0].overrides.get(key, "") if key else "all jobs" if seeded else group[0].name
                  for group in groups]
        series: dict[str, list[tuple[float, float, float]]] = {}
        for group, position in zip(groups, _positions(ax, labels), strict=True):
            mean, sd, n = stats(group, metric)
            if n:
                series.setdefault(setting(group[0], [other for other in keys if other != key]), []).append(
                    (position, mean, sd))
        for label, points in series.items():
            ax.errorbar(*zip(*sorted(points), strict=True), fmt="o-" if key else "o", capsize=3, alpha=0.85,
                        label=label or None)
        if any(series) and len(series) <= MAX_LEGEND_ENTRIES:
            ax.legend(fontsize="x-small")
        against = key or ("all jobs" if seeded else "job")
        ax.set(xlabel=against, ylabel=f"final {metric}{over}", title=f"final {metric} vs {against}")
    for group in groups:
        done = [job for job in group if job.status == COMPLETED]
        by_epoch: dict[int, list[float]] = {}
        for job in done or group:
            for epoch, value in val_curve(job.dir, metric):
                by_epoch.setdefault(epoch, []).append(value)
        if by_epoch:
            epochs = sorted(by_epoch)
            means = [statistics.fmean(by_epoch[epoch]) for epoch in epochs]
            label = (f"{setting(group[0], keys)} (n={max(map(len, by_epoch.values()))})" if seeded
                     else group[0].label(keys))
            sds = [statistics.stdev(by_epoch[epoch]) if len(by_epoch[epoch]) > 1 else 0.0 for epoch in epochs]
            (line,) = curves.plot(epochs, means, "-" if done else ":", marker="o", markersize=3, label=label)
            curves.fill_between(epochs, [m - s for m, s in zip(means, sds, strict=True)],
                                [m + s for m, s in zip(means, sds, strict=True)], color=line.get_color(), alpha=0.2)
    ylabel = f"mean {metric} ± 1 sd over seeds" if seeded else metric
    curves.set(xlabel="epochs trained", ylabel=ylabel, title=f"{ylabel} per epoch")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    if 0 < len(curves.get_lines()) <= MAX_LEGEND_ENTRIES:
        curves.legend(fontsize="x-small")
    fig.suptitle(sweep_counts(jobs) + "".join(
        f"; {status}: " + ", ".join(f"job {job.name}" for job in jobs if job.status == status)
        for status in sorted({job.status for job in jobs} - {COMPLETED})), fontsize="medium")
    save_figure(fig, path)


def plot_rate_distortion(path: Path, jobs: list[SweepJob], keys: list[str]) -> str | None:
    """Rate R = KL against distortion D = -recon, one point per completed job, coloured by its values of `keys`.

    Lines of slope -1 are lines of equal ELBO (-ELBO = D + R). Uses the `test/` metrics when every plotted job has
    them, else the `val/` ones; returns that stage, or None (and draws nothing) when no job recorded both.
    """
    completed = [job for job in jobs if job.status == COMPLETED]
    stage = next((stage for stage in ("test", "val") if completed and all(
        f"{stage}/kl" in job.metrics and f"{stage}/recon" in job.metrics for job in completed)), None)
    points = [(job, -job.metrics[f"{stage}/recon"], job.metrics[f"{stage}/kl"]) for job in completed] if stage else []
    points = [(job, d, r) for job, d, r in points if math.isfinite(d) and math.isfinite(r)]
    if not points:
        return None
    fig = Figure(figsize=(5.6, 4.4))
    ax = fig.subplots()
    by_label: dict[str, list[tuple[float, float]]] = {}
    for job, d, r in points:
        by_label.setdefault(setting(job, keys) or job.label([]), []).append((d, r))
    for index, (label, chosen) in enumerate(by_label.items()):
        ax.scatter(*zip(*chosen, strict=True), color=colormaps["viridis"](index / max(len(by_label) - 1, 1)),
                   label=label, zorder=3)
    totals = sorted(d + r for _, d, r in points)
    (low, high), rates = ax.get_xlim(), ax.get_ylim()
    for total in {totals[0], totals[len(totals) // 2], totals[-1]}:
        ax.plot([low, high], [total - low, total - high], "--", color="grey", linewidth=0.7, zorder=1)
    ax.set_xlim(low, high)
    ax.set_ylim(*rates)  # the points' range: a single-sample (mc) KL may even be slightly negative
    ax.set(xlabel=f"distortion D = −{stage}/recon (nats)", ylabel=f"rate R = {stage}/kl (nats)",
           title="rate against distortion (dashed: equal ELBO)")
    if len(by_label) <= MAX_LEGEND_ENTRIES:
        ax.legend(fontsize="x-small")
    save_figure(fig, path)
    return stage


def _positions(ax: Any, labels: list[str]) -> list[float]:
    """x of each label: the number it spells (log axis when values span a factor of 20 or more), else a category."""
    numbers = [number_or_none(label) for label in labels]
    if labels and all(number is not None for number in numbers):
        if min(numbers) > 0 and max(numbers) / min(numbers) >= 20:
            ax.set_xscale("log")  # learning rates, latent sizes 2..50: equal steps per factor
        return numbers
    categories = sorted(set(labels))
    ax.set_xticks(range(len(categories)), categories)
    return [float(categories.index(label)) for label in labels]


def number_or_none(text: str) -> float | None:
    """`float(text)`, or None when the text is not a number (a category such as `model=cvae`)."""
    try:
        return float(text)
    except ValueError:
        return None


def save_figure(fig: Any, path: Path) -> None:
    """The figure, laid out, as a PNG at `path`, written atomically (a reader never sees half a file)."""
    fig.tight_layout()
    atomic_write(path, lambda stream: fig.savefig(stream, format="png", dpi=80))


if __name__ == "__main__":
    sys.exit(main())
