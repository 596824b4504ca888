"""CPU speed levers on vae_lab's networks: training steps of each variant in ONE process, alternating rounds.

    .venv/bin/python benchmarks/levers.py                      # 8 rounds x 20 steps of every lever (~4 min)
    .venv/bin/python benchmarks/levers.py --rounds 4 --levers fp32 autocast_bf16

Every lever trains its own copy of the same initial `Encoder`/`Decoder` (vae_lab.networks, latent 50) on the same
real MNIST batches of 100 with Adam(1e-4); a round runs `--steps` steps of each lever in turn, so slow drifts of a
shared machine hit all of them alike. Reported: the median training images/s over rounds, the ratio to `fp32`
(vae_lab's default path: channels-last weights and inputs, fused Adam), and what the lever does to the numbers: the
relative L2 error of one step's gradient against fp32's (same weights, batch and noise) and the loss difference.
Only the step is timed (no Lightning, callbacks or data loader): compare levers with each other, not with `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from mnist_arrays import binarized_images
from train_speed import machine_line, tutorial_elbo, tutorial_networks

LATENT, BATCH, LR = 50, 100, 1e-4
REPO = Path(__file__).resolve().parents[1]


def networks() -> tuple[torch.nn.Module, torch.nn.Module]:
    return tutorial_networks(LATENT)


def negative_elbo(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, decoder: torch.nn.Module,
                  eps: torch.Tensor) -> torch.Tensor:
    """vae_lab's training loss: the single-sample Monte Carlo ELBO, negated and averaged; the objective in fp32."""
    return -tutorial_elbo(x, torch.cat([mean, logvar], dim=1), decoder, eps.float()).mean()


@contextlib.contextmanager
def mkldnn_fp32_precision(conv: str = "none", matmul: str = "none") -> Iterator[None]:
    """oneDNN's fp32 math mode (torch >= 2.9): "bf16" lets fp32 convolutions / matmuls compute in bf16 internally."""
    backends = torch.backends.mkldnn
    before = backends.conv.fp32_precision, backends.matmul.fp32_precision
    backends.conv.fp32_precision, backends.matmul.fp32_precision = conv, matmul
    try:
        yield
    finally:
        backends.conv.fp32_precision, backends.matmul.fp32_precision = before


class Lever:
    """One way to run a training step: its own copy of the weights and optimizer, and a context around each step."""

    def __init__(self, encoder: torch.nn.Module, decoder: torch.nn.Module, channels_last: bool = True,
                 context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 pure_bf16: bool = False, stride2: str = "onednn") -> None:
        self.encoder, self.decoder = copy.deepcopy(encoder), copy.deepcopy(decoder)
        self.decoder.stride2 = stride2  # "gemm": the stride-2 transposed convs as phase GEMMs (networks/conv.py)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for module in (self.encoder, self.decoder):
            module.to(memory_format=self.memory_format)
        self.master = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.context, self.pure_bf16 = context, pure_bf16
        if pure_bf16:  # bf16 copies compute; the fp32 master weights and Adam's state stay fp32
            self.encoder16, self.decoder16 = (copy.deepcopy(m).to(torch.bfloat16) for m in (self.encoder, self.decoder))
            self.compute = [*self.encoder16.parameters(), *self.decoder16.parameters()]
        self.optimizer = torch.optim.Adam(self.master, lr=LR, fused=True)

    def loss(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        if self.pure_bf16:
            with torch.no_grad():
                for low, high in zip(self.compute, self.master, strict=True):
                    low.copy_(high)
            mean, logvar = self.encoder16(x.bfloat16()).chunk(2, dim=1)
            return negative_elbo(x, mean, logvar, self.decoder16, eps)
        with self.context():
            mean, logvar = self.encoder(x).chunk(2, dim=1)
            return negative_elbo(x, mean, logvar, self.decoder, eps)

    def gradient(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the flattened fp32 gradient of the master weights, without an optimizer step."""
        for p in self.master + (self.compute if self.pure_bf16 else []):
            p.grad = None
        loss = self.loss(x, eps)
        loss.backward()
        if self.pure_bf16:
            for low, high in zip(self.compute, self.master, strict=True):
                high.grad = low.grad.float()
        return loss.detach(), torch.cat([p.grad.flatten() for p in self.master])

    def step(self, x: torch.Tensor) -> None:
        self.gradient(x, torch.randn(len(x), LATENT))
        self.optimizer.step()


def levers(encoder: torch.nn.Module, decoder: torch.nn.Module) -> dict[str, Lever]:
    return {
        "fp32": Lever(encoder, decoder),
        "fp32_nchw": Lever(encoder, decoder, channels_last=False),
        "onednn_bf16_conv": Lever(encoder, decoder, context=lambda: mkldnn_fp32_precision(conv="bf16")),
        "onednn_bf16_matmul": Lever(encoder, decoder, context=lambda: mkldnn_fp32_precision(matmul="bf16")),
        "onednn_bf16_both": Lever(encoder, decoder, context=lambda: mkldnn_fp32_precision("bf16", "bf16")),
        "autocast_bf16": Lever(encoder, decoder, context=lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
        "pure_bf16": Lever(encoder, decoder, pure_bf16=True),
        "fp32_gemm": Lever(encoder, decoder, stride2="gemm"),
        "autocast_bf16_gemm": Lever(encoder, decoder, stride2="gemm",
                                    context=lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
        "pure_bf16_gemm": Lever(encoder, decoder, pure_bf16=True, stride2="gemm"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per lever per round (default 20)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps per lever first (default 5)")
    parser.add_argument("--levers", nargs="+", default=None, help="which levers (default all)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    all_levers = levers(*networks())
    names = ["fp32", *(name for name in (args.levers or all_levers) if name != "fp32")]  # fp32: the yardstick
    unknown = set(names) - set(all_levers)
    if unknown:
        parser.error(f"unknown lever {', '.join(sorted(unknown))}; use some of {', '.join(all_levers)}.")
    chosen = {name: all_levers[name] for name in names}
    images = torch.from_numpy(binarized_images(args.data_dir, train=True)).unsqueeze(1)
    batches = images[torch.randperm(len(images))[: BATCH * args.steps]].split(BATCH)

    # Numbers first, from the same weights: one step's gradient against fp32's, same batch and noise.
    x, eps = batches[0], torch.randn(BATCH, LATENT)
    reference_loss, reference_grad = chosen["fp32"].gradient(x, eps)
    accuracy = {}
    for name, lever in chosen.items():
        loss, grad = lever.gradient(x, eps)
        accuracy[name] = ((grad - reference_grad).norm() / reference_grad.norm()).item(), (loss - reference_loss).item()

    for lever in chosen.values():
        for batch in batches[: args.warmup_steps]:
            lever.step(batch)
    rates: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(args.rounds):
        for name, lever in chosen.items():
            start = time.perf_counter()
            for batch in batches:
                lever.step(batch)
            rates[name].append(BATCH * len(batches) / (time.perf_counter() - start))

    print(machine_line())
    print(f"{args.rounds} alternating rounds x {args.steps} steps of batch {BATCH}, latent {LATENT}, one process")
    base = statistics.median(rates["fp32"])
    header = f"{'lever':<20} {'img/s':>7} {'x fp32':>7} {'grad rel. err':>13} {'loss diff':>10}  per-round img/s"
    print(header)
    print("-" * len(header))
    for name, values in rates.items():
        rate = statistics.median(values)
        error, loss_diff = accuracy[name]
        print(f"{name:<20} {rate:7.0f} {rate / base:6.2f}x {error:13.2e} {loss_diff:10.4f}  "
              + " ".join(f"{v:.0f}" for v in values))
    print(machine_line())


if __name__ == "__main__":
    main()
