"""`python -m vae_lab.report multirun/<date>/<time>`: one table and one figure that compare a sweep's jobs.

Writes into the sweep folder (or `--out`):
- `report.csv` and `report.md`: one row per job (its swept values, status, final metrics from its
  `result.json`), completed jobs sorted by `val/elbo` (best first), then the failed and unfinished ones, with
  their error, so no job silently drops out; `report.md` also names the best job and, after an Optuna search,
  the sweeper's own best trial (`optimization_results.yaml`).
- `report.png`: the final `val/elbo` against each swept value, and the `val/elbo` curve of every job, read
  from the job's TensorBoard events.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from omegaconf import OmegaConf

from vae_lab.errors import VaeLabError, print_error
from vae_lab.job_result import COMPLETED
from vae_lab.sweep_jobs import SweepJob, find_jobs, searched_keys, sweep_counts, swept_keys

METRIC = "val/elbo"
OPTUNA_RESULTS = "optimization_results.yaml"
MAX_LEGEND_ENTRIES = 12


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vae_lab.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, e.g. multirun/2026-01-31/12-00-00-123456")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: sweep_dir)")
    parser.add_argument("--metric", default=METRIC,
                        help=f"the metric to sort and plot by, higher first (default: {METRIC})")
    args = parser.parse_args(argv)
    try:
        written = write_report(args.sweep_dir, args.out or args.sweep_dir, args.metric)
    except VaeLabError as error:
        print_error(error)
        return 1
    print("\n".join(str(path) for path in written))
    return 0


def write_report(sweep_dir: Path, out_dir: Path, metric: str = METRIC) -> list[Path]:
    """Write report.csv, report.md and report.png for the sweep in `sweep_dir`; return their paths."""
    if not Path(sweep_dir).is_dir():
        raise VaeLabError(
            f"{sweep_dir} is not a folder; pass the folder a sweep printed at its end, like "
            "multirun/2026-01-31/12-00-00-123456."
        )
    jobs = find_jobs(sweep_dir)
    if not jobs:
        raise VaeLabError(
            f"{sweep_dir} holds no sweep jobs (no <job>/.hydra/overrides.yaml inside); pass the folder a sweep "
            "printed at its end, like multirun/2026-01-31/12-00-00-123456."
        )
    recorded = sorted({name for job in jobs for name in job.metrics})
    if recorded and metric not in recorded:
        raise VaeLabError(f"--metric {metric} is not among the metrics the jobs recorded; use one of "
                          f"{', '.join(recorded)} (higher is ranked better).")
    keys = swept_keys(jobs, searched_keys(jobs))
    jobs = ranked(jobs, metric)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["job", "status", *keys, *metric_names(jobs, metric), "error", "dir"]
    rows = [job_row(job, Path(sweep_dir)) for job in jobs]
    written = [out_dir / "report.csv", out_dir / "report.md", out_dir / "report.png"]
    write_csv(written[0], columns, rows)
    written[1].write_text(markdown(Path(sweep_dir), jobs, keys, columns, rows, metric))
    plot(written[2], jobs, keys, metric)
    return written


def ranked(jobs: list[SweepJob], metric: str) -> list[SweepJob]:
    """Completed jobs by `metric`, highest first (an ELBO: higher is better), then the others by job number."""

    def key(job: SweepJob) -> tuple[int, float, int]:
        value = job.metrics.get(metric, math.nan)
        if job.status != COMPLETED or math.isnan(value):
            return (1, 0.0, job.num)
        return (0, -value, job.num)

    return sorted(jobs, key=key)


def metric_names(jobs: list[SweepJob], metric: str) -> list[str]:
    """`metric` first, then every other final metric any job recorded, alphabetically."""
    names = sorted({name for job in jobs for name in job.metrics} - {metric})
    return [metric, *names]


def job_row(job: SweepJob, sweep_dir: Path) -> dict[str, object]:
    row: dict[str, object] = {"job": job.num, "status": job.status, **job.overrides, **job.metrics}
    row["error"] = job.error or ""
    row["dir"] = str(job.dir.relative_to(sweep_dir)) if job.dir.is_relative_to(sweep_dir) else str(job.dir)
    return row


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def markdown(
    sweep_dir: Path,
    jobs: list[SweepJob],
    keys: list[str],
    columns: list[str],
    rows: list[dict[str, object]],
    metric: str,
) -> str:
    lines = [f"# Sweep report: `{sweep_dir}`", "", f"{sweep_counts(jobs)}. Sorted by `{metric}`, best first.", ""]
    best = jobs[0]
    if best.status == COMPLETED and metric in best.metrics:
        lines += [f"Best: {best.label(keys)}, `{metric}` = {best.metrics[metric]:.5g}.", ""]
    optuna_file = sweep_dir / OPTUNA_RESULTS
    if optuna_file.is_file():
        found = OmegaConf.load(optuna_file)
        params = ", ".join(f"{key}={value}" for key, value in found.get("best_params", {}).items())
        lines += [f"Optuna's best trial ({OPTUNA_RESULTS}): {params}, value = {found.get('best_value')}.", ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(column, "")) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, str) and len(value) > 8 and _number(value) is not None:
        value = float(value)  # a sampled learning rate like 0.00018659959624904942 (exact in report.csv)
    text = f"{value:.5g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def val_curve(job_dir: Path, tag: str = METRIC) -> list[tuple[int, float]]:
    """(epochs trained, value) of `tag` in the job's TensorBoard events; empty when the job logged none."""
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


def plot(path: Path, jobs: list[SweepJob], keys: list[str], metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = max(len(keys), 1) + 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8), squeeze=False)
    completed = [job for job in jobs if job.status == COMPLETED and metric in job.metrics]
    for ax, key in zip(axes[0][:-1], keys or [None], strict=True):
        _final_vs_value(ax, completed, key, metric)
    curves = axes[0][-1]
    for job in sorted(jobs, key=lambda job: job.num):
        curve = val_curve(job.dir, metric)
        if curve:
            style = "-" if job.status == COMPLETED else ":"
            curves.plot(*zip(*curve, strict=True), style, marker="o", markersize=3, label=job.label(keys))
    curves.set(xlabel="epochs trained", ylabel=metric, title=f"{metric} per epoch")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    if 0 < len(curves.get_lines()) <= MAX_LEGEND_ENTRIES:
        curves.legend(fontsize="x-small")
    title = sweep_counts(jobs)
    for status in sorted({job.status for job in jobs} - {COMPLETED}):
        title += f"; {status}: " + ", ".join(f"job {job.num}" for job in jobs if job.status == status)
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _final_vs_value(ax: object, jobs: list[SweepJob], key: str | None, metric: str) -> None:
    """Final `metric` of each completed job against its value of `key` (against the job number without one)."""
    labels = [job.overrides.get(key, "") if key else str(job.num) for job in jobs]
    numbers = [_number(label) for label in labels]
    values = [job.metrics[metric] for job in jobs]
    if jobs and all(number is not None for number in numbers):
        order = sorted(range(len(jobs)), key=lambda i: numbers[i])
        ax.plot([numbers[i] for i in order], [values[i] for i in order], "o-", alpha=0.8)
        if min(numbers) > 0 and max(numbers) / min(numbers) >= 20:
            ax.set_xscale("log")  # learning rates, latent sizes 2..50: equal steps per factor
    else:
        categories = sorted(set(labels))
        ax.scatter([categories.index(label) for label in labels], values)
        ax.set_xticks(range(len(categories)), categories)
    ax.set(xlabel=key or "job", ylabel=f"final {metric}", title=f"final {metric} vs {key or 'job'}")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
