"""Per-layer forward and backward times of the tutorial's network, torch (as vae_lab runs it) next to TensorFlow.

    python benchmarks/layers.py              # both frameworks, 1 thread each (`make bench` runs it after the table)
    python benchmarks/layers.py --framework torch --threads 2

Each layer at batch 100, fp32: `--repeats` timed calls after `--warmup` untimed ones, median; "backward" is the
median of forward+backward minus the forward (the gradients a training step needs: inputs and weights, no input
gradient for the first layer). torch runs each layer the way vae_lab's networks do (channels-last, the decoder's
stride-2 transposed convolutions as F.pad + ConvTranspose2d(padding=2, output_padding=1): Keras' "same"); TensorFlow
runs the Keras layers through `tf.function` and `GradientTape`. TensorFlow runs in benchmarks/.venv-tf (see
train_speed.py); without it the TF columns say so. Each framework runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH = 100
# name, kind, input (H, W, C_in), C_out, stride
LAYERS = [
    ("encoder conv 1->32, 28->13, stride 2", "conv", (28, 28, 1), 32, 2),
    ("encoder conv 32->64, 13->6, stride 2", "conv", (13, 13, 32), 64, 2),
    ("encoder dense 2304->100", "dense", (2304,), 100, 1),
    ("decoder dense 50->1568", "dense", (50,), 1568, 1),
    ("decoder transposed conv 32->64, 7->14, stride 2", "deconv", (7, 7, 32), 64, 2),
    ("decoder transposed conv 64->32, 14->28, stride 2", "deconv", (14, 14, 64), 32, 2),
    ("decoder transposed conv 32->1, 28->28, stride 1", "deconv", (28, 28, 32), 1, 1),
]


def timed(call, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def torch_times(threads: int, warmup: int, repeats: int) -> dict[str, list[float]]:
    import torch
    from torch.nn import functional as F

    from vae_lab.networks.conv import PAD_BEFORE

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    times = {}
    for index, (name, kind, shape, c_out, stride) in enumerate(LAYERS):
        if kind == "dense":
            layer = torch.nn.Linear(shape[0], c_out)
            x = torch.randn(BATCH, shape[0])
        else:
            h, w, c_in = shape
            if kind == "conv":
                layer = torch.nn.Conv2d(c_in, c_out, 3, stride=stride)
            elif stride == 2:
                layer = torch.nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=2, output_padding=1)
            else:
                layer = torch.nn.ConvTranspose2d(c_in, c_out, 3, stride=1, padding=1)
            layer = layer.to(memory_format=torch.channels_last)
            x = torch.randn(BATCH, c_in, h, w).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(index != 0)

        def forward(layer=layer, x=x, kind=kind, stride=stride):
            return layer(F.pad(x, PAD_BEFORE)) if kind == "deconv" and stride == 2 else layer(x)

        grad = torch.randn_like(forward())

        def forward_backward(forward=forward, grad=grad):
            forward().backward(grad)

        with torch.no_grad():
            fwd = timed(forward, warmup, repeats)
        both = timed(forward_backward, warmup, repeats)
        times[name] = [fwd, both - fwd]
    return times


def tf_functions(tf, layer, x, grad, sources):
    """`tf.function`s of the layer's forward and of its forward + gradients (closures: no Python arguments)."""

    @tf.function
    def forward():
        return layer(x)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            out = layer(x)
        # The output too: a linear layer's gradients do not need it, and graph pruning would skip the forward.
        return out, tape.gradient(out, sources, output_gradients=grad)

    return forward, forward_backward


def tf_times(threads: int, warmup: int, repeats: int) -> dict[str, list[float]]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.random.set_seed(0)
    times = {}
    for index, (name, kind, shape, c_out, stride) in enumerate(LAYERS):
        if kind == "dense":
            layer = tf.keras.layers.Dense(c_out)
        elif kind == "conv":
            layer = tf.keras.layers.Conv2D(c_out, 3, strides=stride)
        else:
            layer = tf.keras.layers.Conv2DTranspose(c_out, 3, strides=stride, padding="same")
        x = tf.Variable(tf.random.normal((BATCH, *shape)))  # a variable: its gradient is one of the sources
        y = layer(x)
        grad = tf.random.normal(y.shape)
        sources = layer.trainable_variables if index == 0 else [x, *layer.trainable_variables]

        forward, forward_backward = tf_functions(tf, layer, x, grad, sources)
        fwd = timed(forward, warmup, repeats)  # eager TF on a CPU returns when the work is done
        both = timed(forward_backward, warmup, repeats)
        times[name] = [fwd, both - fwd]
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--framework", choices=("both", "torch", "tf"), default="both")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of each framework (default 1)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--worker", choices=("torch", "tf"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run = torch_times if args.worker == "torch" else tf_times
        print(json.dumps(run(args.threads, args.warmup, args.repeats)), flush=True)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_speed import machine_line, tf_python

    results, missing = {}, {}
    for framework in ("torch", "tf") if args.framework == "both" else (args.framework,):
        python = sys.executable if framework == "torch" else tf_python()
        if python is None:
            missing[framework] = "no TensorFlow (benchmarks/.venv-tf: see train_speed.py)"
            continue
        done = subprocess.run([str(python), __file__, "--worker", framework, "--threads", str(args.threads),
                               "--warmup", str(args.warmup), "--repeats", str(args.repeats)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            missing[framework] = f"failed (exit {done.returncode}): {(done.stderr.strip().splitlines() or ['?'])[-1]}"
        else:
            results[framework] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"per layer, batch {BATCH}, fp32, {args.threads} thread(s), median of {args.repeats} after {args.warmup} "
          f"warm-up; {', '.join(f'{k}: {v}' for k, v in missing.items()) or 'torch and TF'}")
    print(f"{'layer':<50} {'forward torch / TF ms':>22} {'backward torch / TF ms':>23} {'bwd x TF':>8}")
    totals = {framework: [0.0, 0.0] for framework in results}
    for name, *_ in LAYERS:
        cells = []
        for part in (0, 1):
            values = [results[f][name][part] if f in results else None for f in ("torch", "tf")]
            for framework in results:
                totals[framework][part] += results[framework][name][part]
            cells.append(" / ".join("-" if v is None else f"{v:.2f}" for v in values))
        t, f = (results.get("torch", {}).get(name), results.get("tf", {}).get(name))
        ratio = f"{t[1] / f[1]:.2f}" if t and f and f[1] > 0 else "-"
        print(f"{name:<50} {cells[0]:>22} {cells[1]:>23} {ratio:>8}")
    summed = [" / ".join(f"{totals[f][part]:.2f}" if f in totals else "-" for f in ("torch", "tf")) for part in (0, 1)]
    print(f"{'all layers':<50} {summed[0]:>22} {summed[1]:>23}")
    print(machine_line(args.threads))


if __name__ == "__main__":
    main()
