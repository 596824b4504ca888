"""Training images/s on a CUDA GPU: vae_lab (fp32, bf16-mixed, each eager and with torch.compile) and a plain loop.

    python benchmarks/gpu_speed.py                 # what benchmarks/gpu_check.sh runs (needs hydra-core, omegaconf)
    python benchmarks/gpu_speed.py --steps 200     # shorter

Every row runs in its own process (a failure, a hang or a compile error in one row leaves the others' figures), on
60,000 random 28 x 28 images (`data=images`: throughput does not depend on what the pixels are), batch 100, latent
50, one epoch of `--steps` steps; the rate counts the steps after `--warmup-steps` (torch.compile and CUDA graph
capture happen there). vae_lab rows run `vae_lab.train.train` with `callbacks=none` plus callbacks.runtime (and
callbacks.throughput, which syncs the GPU only at its few timestamps), no validation. The plain loop is
benchmarks/plain_port.py's model on the same GPU: data on the GPU, plain Adam, no framework. Ends with a markdown
table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
BATCH, LATENT, LR = 100, 50, 1e-4
# name -> (kind, precision, torch.compile mode or None)
ROWS = {
    "vae_lab fp32": ("vae_lab", "32-true", None),
    "vae_lab bf16-mixed": ("vae_lab", "bf16-mixed", None),
    "vae_lab fp32, compile=reduce-overhead": ("vae_lab", "32-true", "reduce-overhead"),
    "vae_lab bf16-mixed, compile=reduce-overhead": ("vae_lab", "bf16-mixed", "reduce-overhead"),
    "plain PyTorch loop fp32": ("plain", "32-true", None),
    "plain PyTorch loop bf16 autocast": ("plain", "bf16-mixed", None),
}


def random_images(path: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(path, train=rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8),
             test=rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8))
    return path


def vae_lab_rate(images: Path, precision: str, compile_mode: str | None, steps: int, warmup: int,
                 extra: list[str]) -> float:
    from train_speed import compose_train_config

    from vae_lab.train import train

    overrides = [
        "accelerator=gpu", "data=images", f"data.path={images}", "data.binarize=static",
        f"trainer.precision={precision}", "callbacks=none",
        "logger=tensorboard", "trainer.max_epochs=1", f"++trainer.limit_train_batches={steps}",
        "++trainer.limit_val_batches=0", "++trainer.num_sanity_val_steps=0", "++trainer.enable_progress_bar=false",
        "+callbacks.runtime._target_=vae_lab.callbacks.runtime.Runtime",
        "+callbacks.throughput._target_=throughput.EpochThroughput",  # benchmarks/throughput.py
        f"+callbacks.throughput.warmup_steps={warmup}",
    ]
    if compile_mode:
        overrides.append(f"+callbacks.runtime.compile={compile_mode}")
    overrides += extra
    with tempfile.TemporaryDirectory(prefix="vae_lab_gpu_") as tmp:
        metrics = train(compose_train_config(overrides, Path(tmp)))
    return metrics["perf/train_images_per_s"]


def plain_rate(precision: str, steps: int, warmup: int) -> float:
    import torch
    from plain_port import PlainCVAE, compute_loss

    torch.manual_seed(0)
    device = torch.device("cuda")
    model = PlainCVAE(LATENT).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    data = (torch.rand(60_000, 1, 28, 28, device=device) > 0.5).float()
    order = torch.randperm(len(data), device=device)
    for step in range(steps):
        if step == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        x = data[order[step * BATCH % len(data):][:BATCH]]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
            loss = compute_loss(model, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    return (steps - warmup) * BATCH / (time.perf_counter() - start)


def worker(name: str, images: Path, steps: int, warmup: int, extra: list[str]) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    kind, precision, compile_mode = ROWS.get(name, ("vae_lab", "32-true", None))
    rate = (vae_lab_rate(images, precision, compile_mode, steps, warmup, extra) if kind == "vae_lab"
            else plain_rate(precision, steps, warmup))
    print(json.dumps({"images_per_s": rate}), flush=True)


def device_line() -> str:
    import torch

    props = torch.cuda.get_device_properties(0)
    return (f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, Python {sys.version.split()[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps per run (default 600: one epoch)")
    parser.add_argument("--warmup-steps", type=int, default=100, help="steps left out of the rate (default 100)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per row (default 120)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), metavar="ROW")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "OVERRIDE"),
                        help="an extra vae_lab row (fp32 eager unless its overrides say otherwise): a name, then "
                             "Hydra overrides, e.g. --variant nan_guard +callbacks.nan_guard._target_=... (repeatable)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.images, args.steps, args.warmup_steps, args.overrides)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("error: gpu_speed.py measures training on a CUDA GPU, and torch.cuda.is_available() is False here; "
              "run it on a machine with one.", file=sys.stderr)
        return 2
    print(device_line(), flush=True)
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vae_lab_gpu_images_") as tmp:
        images = random_images(Path(tmp) / "images.npz")
        for name, extra in [(name, []) for name in args.rows] + [(v[0], v[1:]) for v in args.variant]:
            command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--images", str(images),
                       "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps), "--overrides", *extra]
            started = time.perf_counter()
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
                if done.returncode == 0:
                    results[name] = f"{json.loads(done.stdout.strip().splitlines()[-1])['images_per_s']:,.0f}"
                else:
                    sys.stderr.write(done.stderr[-3000:])
                    last = (done.stderr.strip().splitlines() or ["?"])[-1]
                    results[name] = f"failed (exit {done.returncode}): {last[:160]}"
            except subprocess.TimeoutExpired:
                results[name] = f"failed: longer than --timeout={args.timeout} s"
            print(f"{name}: {results[name]} images/s ({time.perf_counter() - started:.0f} s with start-up)",
                  flush=True)
    print(f"\n{args.steps} steps of batch {BATCH} per run, rate after {args.warmup_steps} warm-up steps; "
          f"{device_line()}\n")
    print("| run | training images/s |\n|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value}{'' if value.startswith('failed') else ' images/s'} |")
    return 0 if all(not value.startswith("failed") for value in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
