"""How fast could this model possibly train and evaluate on this machine? Arithmetic floors against measured rates.

    make floor                                  # documented run (~20 s on 2 cores)
    make floor ARGS="--steps 100"               # a longer reference loop

Counts the model's floating-point work with `torch.utils.flop_counter.FlopCounterMode` (one training step of
batch 100, latent 50; one decoder pass), measures the best fp32 GEMM rate this CPU reaches with torch's BLAS, and
times the GEMMs an im2col formulation of every layer needs (forward, input gradient, weight gradient), each at
its real shape. Then prints three rates side by side, in training images/s and as a multiple of the plain
PyTorch loop of `train_speed.py` measured in the same process:

- measured: the plain PyTorch reference loop (DataLoader over a TensorDataset, Adam), as `make bench` runs it;
- GEMM-shape floor: only the model's own GEMMs, at the speed torch's BLAS runs those shapes (the faster of C = AB
  and C^T = B^T A^T), with everything else (im2col, col2im, elementwise ops, the optimizer, the framework) free:
  an implementation built on these GEMMs cannot beat it;
- hard floor: every FLOP at the best GEMM rate measured on this CPU: nothing on these cores beats it.

And the same for the k = 5000 importance-weighted evaluation of the 10,000 test images (5 * 10^7 decoder passes).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from train_speed import (
    BATCH,
    LATENT,
    REPO,
    STEPS_PER_EPOCH,
    machine_line,
    straightforward_decode,
    torch_loop_run,
    tutorial_elbo,
    tutorial_networks,
)

IWAE_SAMPLES, TEST_IMAGES = 5000, 10_000


@dataclass(frozen=True)
class Gemm:
    """One matrix product (m, k) @ (k, n) of a layer, named for the table."""

    layer: str
    m: int
    k: int
    n: int

    @property
    def flop(self) -> int:
        return 2 * self.m * self.k * self.n


def training_gemms(batch: int, latent: int) -> list[Gemm]:
    """The GEMMs of one training step when every layer is im2col + GEMM (stride-2 transposed convs without zeros).

    Per layer: forward, input gradient (not for the first layer: the data needs none), weight gradient.
    Conv: (pixels, 9*Cin) @ (9*Cin, Cout). Transposed conv: (input pixels, Cin) @ (Cin, 9*Cout), then col2im.
    """
    shapes = [  # name, rows (pixels or batch), input width, output width, needs input gradient
        ("enc.conv1", batch * 13 * 13, 9 * 1, 32, False),
        ("enc.conv2", batch * 6 * 6, 9 * 32, 64, True),
        ("enc.dense", batch, 64 * 6 * 6, 2 * latent, True),
        ("dec.dense", batch, latent, 7 * 7 * 32, True),
        ("dec.deconv1", batch * 7 * 7, 32, 9 * 64, True),
        ("dec.deconv2", batch * 14 * 14, 64, 9 * 32, True),
        ("dec.deconv3", batch * 28 * 28, 32, 9 * 1, True),
    ]
    gemms = []
    for name, rows, width_in, width_out, input_grad in shapes:
        gemms.append(Gemm(f"{name} forward", rows, width_in, width_out))
        if input_grad:
            gemms.append(Gemm(f"{name} input grad", rows, width_out, width_in))
        gemms.append(Gemm(f"{name} weight grad", width_in, rows, width_out))
    return gemms


def decoder_gemms(batch: int, latent: int) -> list[Gemm]:
    return [g for g in training_gemms(batch, latent) if g.layer.startswith("dec.") and g.layer.endswith("forward")]


def counted_flop(batch: int, latent: int) -> tuple[int, int]:
    """FLOPs torch counts for one training step (forward + backward) and for one decoder forward, per image."""
    from torch.utils.flop_counter import FlopCounterMode

    encoder, decoder = tutorial_networks(latent)
    x = (torch.rand(batch, 1, 28, 28) > 0.5).float()
    # FlopCounterMode counts a transposed conv by its input size; vae_lab's decoder feeds it a zero-padded input
    # (README, "What is trained"), so the model's own work is counted on the unpadded, cropping formulation.
    with FlopCounterMode(display=False) as step:
        eps = torch.randn(batch, latent)
        decode = lambda z: straightforward_decode(decoder, z)  # noqa: E731
        (-tutorial_elbo(x, encoder(x), decoder, eps, decode=decode).mean()).backward()
    with FlopCounterMode(display=False) as decoded, torch.no_grad():
        straightforward_decode(decoder, eps)
    return step.get_total_flops() // batch, decoded.get_total_flops() // batch


def seconds_per_call(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_seconds(gemm: Gemm, repeats: int) -> float:
    """The faster of computing C = A @ B and its transpose C^T = B^T @ A^T (contiguous operands either way)."""
    a, b = torch.randn(gemm.m, gemm.k), torch.randn(gemm.k, gemm.n)
    a_t, b_t = a.t().contiguous(), b.t().contiguous()
    return min(seconds_per_call(lambda: torch.mm(a, b), repeats), seconds_per_call(lambda: torch.mm(b_t, a_t), repeats))


def best_gemm_rate(size: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of a square (size x size) @ (size x size) product: the most this CPU gives torch's BLAS."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return 2 * size**3 / seconds_per_call(lambda: torch.mm(a, b), repeats)


def decoder_passes_per_s(batch: int, repeats: int) -> float:
    """Decoder forward passes per second as `vae_lab.evaluate` runs them (inference mode, channels-last)."""
    decoder = tutorial_networks(LATENT)[1].eval().to(memory_format=torch.channels_last)
    z = torch.randn(batch, LATENT)
    with torch.inference_mode():
        return batch / seconds_per_call(lambda: decoder(z), repeats)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="reference-loop steps (default 60; 5 are warm-up)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per GEMM, median kept (default 20)")
    parser.add_argument("--gemm-size", type=int, default=2048, help="square GEMM for the best rate (default 2048)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="folder holding MNIST/raw")
    args = parser.parse_args(argv)
    if not 5 < args.steps <= STEPS_PER_EPOCH or args.repeats < 1 or args.gemm_size < 64:
        parser.error(f"--steps={args.steps}, --repeats={args.repeats}, --gemm-size={args.gemm_size} are not "
                     f"allowed; use 5 < steps <= {STEPS_PER_EPOCH}, repeats >= 1, gemm-size >= 64.")
    return args


def rate_row(name: str, images_per_s: float, reference: float) -> str:
    return (f"{name:<34} {images_per_s:10.0f} {STEPS_PER_EPOCH * BATCH / images_per_s:9.1f} "
            f"{images_per_s / reference:6.2f}x")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(machine_line(), flush=True)
    train_flop, decode_flop = counted_flop(BATCH, LATENT)
    peak = best_gemm_rate(args.gemm_size, max(3, args.repeats // 4))
    peak_bf16 = best_gemm_rate(args.gemm_size, max(3, args.repeats // 4), torch.bfloat16)
    gemms = training_gemms(BATCH, LATENT)
    times = {g: gemm_seconds(g, args.repeats) for g in gemms}
    reference = torch_loop_run("reference", args.data_dir, 42, args.steps, 5).images_per_s

    print(f"\nwork, counted by torch: {train_flop / 1e6:.1f} MFLOP per training image (forward + backward), "
          f"{decode_flop / 1e6:.2f} MFLOP per decoder pass")
    print(f"best GEMM rate ({args.gemm_size}^3): fp32 {peak / 1e9:.0f} GFLOP/s, bf16 {peak_bf16 / 1e9:.0f} GFLOP/s")
    print(f"\n{'GEMM of one training step (batch 100)':<40} {'m x k x n':>20} {'ms':>7} {'GFLOP/s':>8}")
    for gemm, seconds in times.items():
        print(f"{gemm.layer:<40} {f'{gemm.m}x{gemm.k}x{gemm.n}':>20} {seconds * 1e3:7.3f} "
              f"{gemm.flop / seconds / 1e9:8.1f}")
    step_gemm_s = sum(times.values())
    print(f"{'sum':<40} {'':>20} {step_gemm_s * 1e3:7.2f} {sum(g.flop for g in gemms) / step_gemm_s / 1e9:8.1f}")

    print(f"\n{'training, fp32, batch 100':<34} {'img/s':>10} {'s/epoch':>9} {'vs ref':>7}")
    print(rate_row("reference loop (measured)", reference, reference))
    print(rate_row("goal: 2x the reference", 2 * reference, reference))
    print(rate_row("GEMM-shape floor (GEMMs only)", BATCH / step_gemm_s, reference))
    print(rate_row("hard floor (all FLOPs at best GEMM)", peak / train_flop, reference))

    passes = IWAE_SAMPLES * TEST_IMAGES
    decoder_s = sum(times[g] for g in decoder_gemms(BATCH, LATENT)) / BATCH
    measured = decoder_passes_per_s(BATCH, args.repeats)
    print(f"\nIWAE k={IWAE_SAMPLES} on {TEST_IMAGES} test images = {passes:.0e} decoder passes, fp32:")
    print(f"  measured decoder (batch 100, channels-last): {measured:8.0f} passes/s -> "
          f"{passes / measured / 60:6.0f} min")
    print(f"  GEMM-shape floor:                            {1 / decoder_s:8.0f} passes/s -> "
          f"{passes * decoder_s / 60:6.0f} min")
    print(f"  hard floor (best fp32 GEMM rate):            {peak / decode_flop:8.0f} passes/s -> "
          f"{passes * decode_flop / peak / 60:6.0f} min")
    print(f"  hard floor at the best bf16 GEMM rate:       {peak_bf16 / decode_flop:8.0f} passes/s -> "
          f"{passes * decode_flop / peak_bf16 / 60:6.0f} min")


if __name__ == "__main__":
    main()
