"""Issue 25, item 3: both cores as intra-op threads, or as two workers on half the batch each (measured, not used yet).

    .venv/bin/python benchmarks/two_workers.py                 # 5 alternating rounds x 40 steps (~1 min)

One training step of vae_lab's conv Encoder/Decoder (latent 50, batch 100, channels-last, fused Adam, fp32) run two
ways in ONE process, alternating rounds: (a) `torch.set_num_threads(2)`, one forward/backward on 100 images; (b)
`torch.set_num_threads(1)` and two Python threads, each running forward/backward on 50 images with its own replica
of the weights; the replicas' gradients are summed in a fixed order (deterministic) into the one optimizer. Same
mean gradient as (a) up to float rounding. Random binary images: only the step is timed, compare the rows.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from train_speed import machine_line, tutorial_elbo, tutorial_networks

BATCH, LATENT = 100, 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder, decoder = (network.to(memory_format=torch.channels_last) for network in tutorial_networks(LATENT))
    x = (torch.rand(BATCH, 1, 28, 28) > 0.5).float().to(memory_format=torch.channels_last)
    eps = torch.randn(BATCH, LATENT)  # drawn once, outside the workers: their order cannot change the noise
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-4, fused=True)
    replicas = [(copy.deepcopy(encoder), copy.deepcopy(decoder)) for _ in range(2)]
    pool = ThreadPoolExecutor(2)

    def loss(enc: torch.nn.Module, dec: torch.nn.Module, rows: slice) -> torch.Tensor:
        return -tutorial_elbo(x[rows], enc(x[rows]), dec, eps[rows]).sum() / BATCH

    def threads_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(encoder, decoder, slice(None)).backward()
        optimizer.step()

    def half(i: int) -> list[torch.Tensor]:
        enc, dec = replicas[i]
        weights = [*enc.parameters(), *dec.parameters()]
        return torch.autograd.grad(loss(enc, dec, slice(i * BATCH // 2, (i + 1) * BATCH // 2)), weights)

    def workers_step() -> None:
        with torch.no_grad():
            for enc, dec in replicas:
                torch._foreach_copy_([*enc.parameters(), *dec.parameters()], params)
        first, second = pool.map(half, range(2))
        for param, a, b in zip(params, first, second, strict=True):
            param.grad = a + b
        optimizer.step()

    def images_per_second(step: Callable[[], None], threads: int) -> float:
        torch.set_num_threads(threads)
        step()
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        return BATCH * args.steps / (time.perf_counter() - started)

    full = torch.autograd.grad(loss(encoder, decoder, slice(None)), params)
    workers_step()  # one step of (b): compare its summed gradient with (a)'s on the same weights, batch and noise
    error = max(((p.grad - g).norm() / g.norm()).item() for p, g in zip(params, full, strict=True))
    print(f"largest relative L2 difference of a parameter's gradient, (b) vs (a): {error:.1e}")
    rows: dict[str, list[float]] = {"2 intra-op threads": [], "2 workers x 1 thread": []}
    for _ in range(args.rounds):
        rows["2 intra-op threads"].append(images_per_second(threads_step, 2))
        rows["2 workers x 1 thread"].append(images_per_second(workers_step, 1))
    base = statistics.median(rows["2 intra-op threads"])
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"{name:22s} {median:7.0f} img/s  {median / base:.2f}x  ({' '.join(f'{v:.0f}' for v in values)})")
    print(machine_line())


if __name__ == "__main__":
    main()
