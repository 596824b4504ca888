"""The figures of `vae_lab.report`: final metric against each swept value, curves per epoch, rate against distortion.

A job's curve comes from its TensorBoard events (`logger=tensorboard`, the default) or, without them, from its CSV
log (`logger=csv`). Over seeds, a setting is drawn as its mean with ±1 sample standard deviation: error bars for
final values, a shaded band for curves.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from vae_lab.atomic_files import atomic_write
from vae_lab.job_result import COMPLETED
from vae_lab.sweep_jobs import SweepJob, setting, sweep_counts

MAX_LEGEND_ENTRIES = 12
Group = tuple[tuple[str, ...], list[SweepJob]]


def val_curve(job_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(epochs trained, value) of `tag` from the job's TensorBoard events, else its CSV log; empty without either."""
    return _tensorboard_curve(job_dir, tag) or _csv_curve(job_dir, tag)


def _tensorboard_curve(job_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    points: dict[int, float] = {}
    for events_dir in sorted({path.parent for path in Path(job_dir).rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(events_dir), size_guidance={SCALARS: 0})  # 0: keep every point
        events.Reload()
        scalars = events.Tags()["scalars"]
        if tag not in scalars:
            continue
        # Lightning logs `epoch` (0-based) at every step it logs a metric: after epoch e we have trained e + 1.
        epoch_at = {event.step: int(event.value) + 1 for event in events.Scalars("epoch")} if "epoch" in scalars else {}
        for event in events.Scalars(tag):
            points[epoch_at.get(event.step, event.step)] = event.value
    return sorted(points.items())


def _csv_curve(job_dir: Path, tag: str) -> list[tuple[int, float]]:
    """From Lightning's CSVLogger files, `csv/version_N/metrics.csv` (a resumed run adds the next version)."""
    points: dict[int, float] = {}
    for metrics_file in sorted(Path(job_dir).glob("csv/**/metrics.csv")):
        with metrics_file.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get(tag) and row.get("epoch"):
                    points[int(float(row["epoch"])) + 1] = float(row[tag])
    return sorted(points.items())


def plot_jobs(path: Path, jobs: list[SweepJob], keys: list[str], metric: str) -> None:
    """One panel per swept key (the final `metric` of each completed job against its value) and one of curves."""
    fig, axes = _figure(max(len(keys), 1) + 1)
    completed = [job for job in jobs if job.status == COMPLETED and metric in job.metrics]
    for ax, key in zip(axes[:-1], keys or [None], strict=True):
        _final_vs_value(ax, completed, key, metric)
    curves = axes[-1]
    for job in jobs_in_folder_order(jobs):
        curve = val_curve(job.dir, metric)
        if curve:
            style = "-" if job.status == COMPLETED else ":"
            curves.plot(*zip(*curve, strict=True), style, marker="o", markersize=3, label=job.label(keys))
    _finish(fig, curves, path, jobs, metric)


def plot_groups(path: Path, jobs: list[SweepJob], groups: list[Group], keys: list[str], metric: str) -> None:
    """As `plot_jobs`, a point per seed group: its mean with a ±1 sd error bar, and a band around its mean curve."""
    fig, axes = _figure(max(len(keys), 1) + 1)
    for ax, key in zip(axes[:-1], keys or [None], strict=True):
        _group_means_vs_value(ax, groups, keys, key, metric)
    curves = axes[-1]
    for _, group_jobs in groups:
        by_epoch: dict[int, list[float]] = {}
        for job in group_jobs:
            if job.status == COMPLETED:
                for epoch, value in val_curve(job.dir, metric):
                    by_epoch.setdefault(epoch, []).append(value)
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        means = [statistics.fmean(by_epoch[epoch]) for epoch in epochs]
        sds = [statistics.stdev(by_epoch[epoch]) if len(by_epoch[epoch]) > 1 else 0.0 for epoch in epochs]
        label = setting(group_jobs[0], keys) + f" (n={max(len(by_epoch[epoch]) for epoch in epochs)})"
        (line,) = curves.plot(epochs, means, "-", marker="o", markersize=3, label=label)
        curves.fill_between(epochs, [m - s for m, s in zip(means, sds, strict=True)],
                            [m + s for m, s in zip(means, sds, strict=True)], color=line.get_color(), alpha=0.2)
    _finish(fig, curves, path, jobs, f"mean {metric} ± 1 sd over seeds")


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    labels = list(dict.fromkeys(setting(job, keys) or job.label([]) for job, _, _ in points))
    colours = plt.get_cmap("viridis")
    for index, label in enumerate(labels):
        chosen = [(d, r) for job, d, r in points if (setting(job, keys) or job.label([])) == label]
        ax.scatter(*zip(*chosen, strict=True), color=colours(index / max(len(labels) - 1, 1)), label=label, zorder=3)
    totals = sorted(d + r for _, d, r in points)
    (low, high), rates = ax.get_xlim(), ax.get_ylim()
    for total in {totals[0], totals[len(totals) // 2], totals[-1]}:
        ax.plot([low, high], [total - low, total - high], "--", color="grey", linewidth=0.7, zorder=1)
    ax.set_xlim(low, high)
    ax.set_ylim(*rates)  # the points' range: a single-sample (mc) KL may even be slightly negative
    ax.set(xlabel=f"distortion D = −{stage}/recon (nats)", ylabel=f"rate R = {stage}/kl (nats)",
           title="rate against distortion (dashed: equal ELBO)")
    if len(labels) <= MAX_LEGEND_ENTRIES:
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return stage


def jobs_in_folder_order(jobs: list[SweepJob]) -> list[SweepJob]:
    return sorted(jobs, key=lambda job: (job.dir.parent.as_posix(), job.num, job.name))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt

    return plt


def _figure(panels: int) -> tuple[Any, list[Any]]:
    fig, axes = _pyplot().subplots(1, panels, figsize=(4.2 * panels, 3.8), squeeze=False)
    return fig, list(axes[0])


def _finish(fig: Any, curves: Any, path: Path, jobs: list[SweepJob], ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    curves.set(xlabel="epochs trained", ylabel=ylabel, title=f"{ylabel} per epoch")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    if 0 < len(curves.get_lines()) <= MAX_LEGEND_ENTRIES:
        curves.legend(fontsize="x-small")
    title = sweep_counts(jobs)
    for status in sorted({job.status for job in jobs} - {COMPLETED}):
        title += f"; {status}: " + ", ".join(f"job {job.name}" for job in jobs if job.status == status)
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    save_figure(fig, path)
    _pyplot().close(fig)


def _final_vs_value(ax: Any, jobs: list[SweepJob], key: str | None, metric: str) -> None:
    """Final `metric` of each completed job against its value of `key` (against the job without one)."""
    labels = [job.overrides.get(key, "") if key else job.name for job in jobs]
    values = [job.metrics[metric] for job in jobs]
    positions = _positions(ax, labels)
    order = sorted(range(len(jobs)), key=lambda i: positions[i])
    ax.plot([positions[i] for i in order], [values[i] for i in order], "o-" if key else "o", alpha=0.8)
    ax.set(xlabel=key or "job", ylabel=f"final {metric}", title=f"final {metric} vs {key or 'job'}")


def _group_means_vs_value(ax: Any, groups: list[Group], keys: list[str], key: str | None, metric: str) -> None:
    """Each group's mean final `metric` ± 1 sd against its value of `key`; one line per setting of the other keys."""
    index = keys.index(key) if key else None
    labels = [values[index] if index is not None else "all jobs" for values, _ in groups]
    positions = _positions(ax, labels)
    series: dict[str, list[tuple[float, float, float]]] = {}
    for (_, jobs), position in zip(groups, positions, strict=True):
        found = [job.metrics[metric] for job in jobs if job.status == COMPLETED and math.isfinite(
            job.metrics.get(metric, math.nan))]
        if found:
            others = setting(jobs[0], [other for other in keys if other != key])
            sd = statistics.stdev(found) if len(found) > 1 else 0.0
            series.setdefault(others, []).append((position, statistics.fmean(found), sd))
    for label, points in series.items():
        points.sort()
        ax.errorbar(*zip(*points, strict=True), fmt="o-", capsize=3, alpha=0.85, label=label or None)
    if any(series) and len(series) <= MAX_LEGEND_ENTRIES:
        ax.legend(fontsize="x-small")
    ax.set(xlabel=key or "", ylabel=f"final {metric} (mean ± 1 sd)", title=f"final {metric} vs {key or 'all jobs'}")


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
    """The figure as a PNG at `path`, written atomically (a reader never sees half a file)."""
    atomic_write(path, lambda stream: fig.savefig(stream, format="png", dpi=80))
