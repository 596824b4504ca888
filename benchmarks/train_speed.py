"""Training speed of vae_lab's real path against a plain PyTorch loop: same model, same loss, same data.

    make bench                                  # 3 alternating repeats of one full epoch each (documented run)
    make bench ARGS="--steps 60 --repeats 2"    # a quick look (~2 minutes on 2 cores)
    make bench ARGS="--variant bf16 trainer.precision=bf16-mixed"   # an extra vae_lab row with its own overrides

Each repeat runs the reference loop, then `vae_lab.train.train(cfg)` with the composed default config (plus
`trainer.max_epochs=1`, the step limit and the `EpochThroughput` callback), then every `--variant`, each in a
fresh Python process (this script with `--worker`), so that nothing one run leaves in its process (thread
counts, allocator state, caches, the peak RSS) carries over into the next. The reference is what a straightforward
port looks like: a `DataLoader` over a `TensorDataset` of the same binarized tensors, `Encoder`/`Decoder` from
`vae_lab.networks` with the decoder run as a direct port of the Keras layers runs it (`straightforward_decode`:
each stride-2 transposed conv in full, then its last row and column dropped; the same numbers as vae_lab's
uncropped formulation), `monte_carlo_elbo`, `Adam(lr=1e-4)`, torch's default threads and allocator settings. Both
start from the same weights (same seed) and run the same number of steps.

Reported per run (medians over repeats): training images/s after `--warmup-steps` steps, the seconds a full
600-step epoch takes at that rate, the ratio to the reference, training images per CPU-second of the process
(the cost of the work, less sensitive than wall time to other jobs on the machine), warm-up seconds,
validation seconds (10,000 test images; not part of the training rate), everything else in fit (callbacks,
checkpoints, TensorBoard), the peak RSS of the run's process (the kernel's high-water mark, imports and data
included) and the validation ELBO after the epoch (mean +- sd).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
STEPS_PER_EPOCH = 600  # 60,000 training images / batch 100
BATCH, EVAL_BATCH, LATENT, LR = 100, 1000, 50, 1e-4


@dataclass
class Run:
    images_per_s: float
    images_per_cpu_s: float
    warmup_s: float
    val_s: float
    other_s: float
    peak_rss_mb: float
    val_elbo: float


@dataclass
class Row:
    name: str
    runs: list[Run] = field(default_factory=list)


# ---- memory: the kernel's RSS high-water mark of this process (Linux), else ru_maxrss ----------------------------


def peak_rss_mb() -> float:
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the reference: a plain PyTorch loop ------------------------------------------------------------------------


def straightforward_decode(decoder: Any, z: Any) -> Any:
    """`decoder(z)` as a direct port of the Keras layers computes it: full transposed convs, then a crop.

    Keras "same" keeps the first 2n rows/columns of a stride-2 transposed conv's 2n + 1; `vae_lab.networks.Decoder`
    gets them without computing and copying the full output (same weights, same numbers: tests/test_benchmark_cli.py).
    """
    import torch
    from torch.nn import functional as F

    h = torch.relu(decoder.dense(z)).view(-1, 32, 7, 7)
    for deconv in (decoder.deconv1, decoder.deconv2):
        h = torch.relu(F.conv_transpose2d(h, deconv.weight, deconv.bias, stride=2)[..., :-1, :-1])
    return F.conv_transpose2d(h, decoder.deconv3.weight, decoder.deconv3.bias, padding=1)


def reference_run(data_dir: Path, seed: int, steps: int, warmup_steps: int) -> Run:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from vae_lab.datamodule import binarize_static, load_split
    from vae_lab.mnist_files import ensure_mnist_files
    from vae_lab.networks import Decoder, Encoder
    from vae_lab.objectives import monte_carlo_elbo, reparameterize

    fit_start = time.perf_counter()
    raw_dir = ensure_mnist_files(data_dir, allow_download=False)
    train_x = binarize_static(load_split(raw_dir, train=True)[0])
    test_x = binarize_static(load_split(raw_dir, train=False)[0])
    torch.manual_seed(seed)  # the same initial weights as vae_lab's run with this seed
    encoder, decoder = Encoder(LATENT), Decoder(LATENT)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=LR)
    loader = DataLoader(TensorDataset(train_x), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))

    def elbo(x: torch.Tensor) -> torch.Tensor:
        mean, logvar = encoder(x)
        z = reparameterize(mean, logvar, torch.randn_like(mean))
        return monte_carlo_elbo(x, straightforward_decode(decoder, z), z, mean, logvar).elbo

    images = 0
    start = time.perf_counter()
    for step, (x,) in enumerate(loader):
        if step == steps:
            break
        loss = -elbo(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step + 1 == warmup_steps:
            warm, cpu_warm = time.perf_counter(), time.process_time()
        elif step >= warmup_steps:
            images += len(x)
    end, cpu_end = time.perf_counter(), time.process_time()
    with torch.no_grad():
        val = torch.cat([elbo(x) for x in test_x.split(EVAL_BATCH)]).mean().item()
    val_s = time.perf_counter() - end
    fit_s = time.perf_counter() - fit_start
    return Run(images / (end - warm), images / (cpu_end - cpu_warm), warm - start, val_s,
               fit_s - (end - start) - val_s, peak_rss_mb(), val)


# ---- vae_lab: train(cfg) with the composed default config -------------------------------------------------------


def compose_train_config(overrides: list[str], output_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[f"hydra.run.dir={output_dir}", f"paths.output_dir={output_dir}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} values resolve as under @hydra.main
    return cfg


def vae_lab_run(data_dir: Path, seed: int, steps: int, warmup_steps: int, overrides: list[str]) -> Run:
    from vae_lab.train import train

    with tempfile.TemporaryDirectory(prefix="vae_lab_bench_") as tmp:
        cfg = compose_train_config(
            [
                f"paths.data_dir={data_dir}",
                f"seed={seed}",
                "trainer.max_epochs=1",
                f"++trainer.limit_train_batches={steps}",
                "+callbacks.throughput._target_=vae_lab.throughput.EpochThroughput",
                f"+callbacks.throughput.warmup_steps={warmup_steps}",
                *overrides,
            ],
            Path(tmp),
        )
        fit_start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # Lightning's summary and progress bar; stdout keeps the table
            metrics = train(cfg)
        fit_s = time.perf_counter() - fit_start
    rate = metrics["perf/train_images_per_s"]
    train_s = (steps - warmup_steps) * BATCH / rate
    warmup_s, val_s = metrics["perf/warmup_s"], metrics["perf/val_s"]
    return Run(rate, metrics["perf/train_images_per_cpu_s"], warmup_s, val_s, fit_s - train_s - warmup_s - val_s,
               peak_rss_mb(), metrics["val/elbo"])


# ---- report ----------------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:8.2f} +- {sd:4.2f}"


def print_table(rows: list[Row]) -> None:
    reference = median([r.images_per_s for r in rows[0].runs])
    header = (f"{'run':<16} {'train img/s':>11} {'s/epoch':>8} {'ratio':>6} {'img/CPU-s':>9} {'warm-up s':>9} "
              f"{'val s':>6} {'other s':>7} {'peak RSS MB':>11} {'val ELBO (mean +- sd)':>22} "
              f"{'minus ref (paired)':>19}")
    print(header)
    print("-" * len(header))
    for row in rows:
        rate = median([r.images_per_s for r in row.runs])
        print(
            f"{row.name:<16} {rate:11.0f} {STEPS_PER_EPOCH * BATCH / rate:8.1f} {rate / reference:5.2f}x "
            f"{median([r.images_per_cpu_s for r in row.runs]):9.0f} "
            f"{median([r.warmup_s for r in row.runs]):9.2f} {median([r.val_s for r in row.runs]):6.2f} "
            f"{median([r.other_s for r in row.runs]):7.2f} {median([r.peak_rss_mb for r in row.runs]):11.0f} "
            f"{spread([r.val_elbo for r in row.runs]):>22} "
            # Same seed, same initial weights: the paired difference is what "the same math" predicts to be ~0.
            f"{spread([r.val_elbo - ref.val_elbo for r, ref in zip(row.runs, rows[0].runs, strict=True)]):>19}"
        )
    print("per-repeat train img/s: " + "; ".join(
        f"{row.name} " + " ".join(f"{r.images_per_s:.0f}" for r in row.runs) for row in rows))


def machine_line(threads: int | None = None) -> str:
    import platform

    import torch

    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"machine: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, intra-op threads "
            f"{threads or torch.get_num_threads()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    parser.add_argument("--steps", type=int, default=STEPS_PER_EPOCH,
                        help=f"training steps per run (default {STEPS_PER_EPOCH} = one full epoch)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="first steps left out of the rate (default 5)")
    parser.add_argument("--seed", type=int, default=42, help="repeat r uses seed + r (default 42)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="folder holding MNIST/raw")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for every run (vae_lab: threads=N); default: torch's own")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "OVERRIDE"),
                        help="an extra vae_lab row: a name, then Hydra overrides (repeatable)")
    parser.add_argument("--worker", choices=("reference", "vae_lab"), help=argparse.SUPPRESS)
    parser.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.warmup_steps < args.steps <= STEPS_PER_EPOCH:
        parser.error(f"--steps={args.steps} and --warmup-steps={args.warmup_steps} are not allowed; "
                     f"use 0 < warm-up steps < steps <= {STEPS_PER_EPOCH}.")
    return args


def worker(args: argparse.Namespace) -> None:
    """One run in this process; its `Run` is the last line of stdout, as JSON."""
    if args.worker == "reference":
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        run = reference_run(args.data_dir, args.seed, args.steps, args.warmup_steps)
    else:  # train() sets vae_lab's threads from its config
        threads = [] if args.threads is None else [f"threads={args.threads}"]
        run = vae_lab_run(args.data_dir, args.seed, args.steps, args.warmup_steps, [*threads, *args.overrides])
    print(json.dumps(asdict(run)), flush=True)


def run_in_process(args: argparse.Namespace, seed: int, overrides: list[str] | None) -> Run:
    """Run the reference (overrides None) or vae_lab with `overrides` in a fresh Python process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "reference" if overrides is None else
               "vae_lab", "--seed", str(seed), "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
               "--data-dir", str(args.data_dir)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if overrides:
        command += ["--overrides", *overrides]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)  # stderr: the progress bar
    if result.returncode != 0:
        raise SystemExit(f"error: the benchmark run {' '.join(command[2:])} failed (exit {result.returncode}); "
                         "its messages are above.")
    return Run(**json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    configs = [("reference", None), ("vae_lab", []), *((v[0], v[1:]) for v in args.variant)]
    rows = [Row(name) for name, _ in configs]
    print(machine_line(args.threads), flush=True)
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for row, (name, overrides) in zip(rows, configs, strict=True):
            run = run_in_process(args, args.seed + repeat, overrides)
            row.runs.append(run)
            print(f"[repeat {repeat + 1}/{args.repeats}] {name}: {run.images_per_s:.0f} img/s, "
                  f"val ELBO {run.val_elbo:.2f}", file=sys.stderr, flush=True)
    print(f"{args.repeats} repeats x {args.steps} steps of batch {BATCH}, latent {LATENT}, fp32 unless a variant "
          f"says otherwise, one process per run; total {time.perf_counter() - started:.0f} s")
    print_table(rows)
    print(machine_line(args.threads))


if __name__ == "__main__":
    main()
