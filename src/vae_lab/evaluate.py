"""`python -m vae_lab.evaluate ckpt_path=PATH [iwae_samples=5000] [num_images=N] [output_dir=DIR] [seed=S]`.

Scores a checkpoint on the binarized MNIST test set with the numbers papers report: the single-sample ELBO
(the tutorial's), the ELBO with the exact Gaussian KL, and the importance-weighted bound with k samples
(Burda et al. 2016; k = 5000 estimates log p(x)), plus the number of active latent units. Prints a table and
writes `metrics.json` beside the checkpoint (or into `output_dir`). The same seed gives the same numbers.

`evaluate(cfg)` is a plain function (tests call it); `main` is the thin Hydra wrapper. `final_test` is what
`train` calls to score the held-out test set once training is over.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from vae_lab.accelerators import pick_device
from vae_lab.errors import VaeLabError, exit_on_user_error
from vae_lab.preflight import CONFIG_DIR, run
from vae_lab.validation import TEST_SIZE, validate_config

if TYPE_CHECKING:
    import lightning as L
    import torch
    from torch import Tensor

    from vae_lab.models.vae import VAE

# Burda et al. (2016), section 5.2: a latent unit is active if its posterior mean varies across x by more than this.
ACTIVE_UNIT_THRESHOLD = 0.01


def require_ckpt_path(cfg: DictConfig, command: str) -> str:
    if not cfg.get("ckpt_path"):
        raise VaeLabError(f"ckpt_path is missing; run `python -m {command} ckpt_path=<run dir>/checkpoints/last.ckpt`.")
    return str(cfg.ckpt_path)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score `cfg.ckpt_path` on the test set; write metrics.json, print the table, return the metrics."""
    started = time.perf_counter()
    ckpt_path = require_ckpt_path(cfg, "vae_lab.evaluate")
    validate_config(cfg)  # the command line did it already; Python callers get the same sentences
    device = pick_device(cfg.device)

    import torch

    from vae_lab.checkpoints import load_checkpoint, test_batches

    checkpoint = load_checkpoint(ckpt_path)
    model = checkpoint.model.to(device)
    # oneDNN's transposed convolutions run ~1.5x faster on channels-last weights on CPU; the math is unchanged.
    model.decoder.to(memory_format=torch.channels_last)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    totals: dict[str, float] = {}
    posterior_means, seen = [], 0
    expected = cfg.num_images or TEST_SIZE
    with torch.inference_mode():
        for x, _ in test_batches(checkpoint, cfg.paths.data_dir, cfg.batch_size, cfg.num_images):
            scores, mean = score_batch(model, x.to(device), cfg.iwae_samples, cfg.decode_batch, generator)
            for name, values in scores.items():
                totals[name] = totals.get(name, 0.0) + values.double().sum().item()
            posterior_means.append(mean.double().cpu())
            seen += len(x)
            report_progress(seen - len(x), seen, expected, time.perf_counter() - started)
    variances = torch.cat(posterior_means).var(dim=0, correction=0)
    metrics: dict[str, Any] = {f"test/{name}": total / seen for name, total in totals.items()}
    metrics["test/active_units"] = int((variances > ACTIVE_UNIT_THRESHOLD).sum())
    metrics.update(iwae_samples=cfg.iwae_samples, num_images=seen, seed=cfg.seed,
                   ckpt_path=str(Path(ckpt_path).resolve()), wall_time_s=round(time.perf_counter() - started, 2))
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else Path(ckpt_path).resolve().parent
    write_metrics(metrics, output_dir / "metrics.json")
    print(format_table(metrics))
    return metrics


def score_batch(model: VAE, x: Tensor, k: int, decode_batch: int, generator: torch.Generator
                ) -> tuple[dict[str, Tensor], Tensor]:
    """Per-image bounds for one batch (in table order) and the posterior means; draws all noise from `generator`."""
    import torch

    from vae_lab.objectives import analytic_elbo, importance_weighted_bound, monte_carlo_elbo, reparameterize

    mean, logvar = model.encode(x)

    def draw_noise(count: int) -> Tensor:
        # One draw of (B, D) per sample: torch's CPU normal sampler fills blocks of 16 values, so a single draw of
        # (count, B, D) would give other numbers when count (decode_batch) changes. Per-sample draws do not.
        return torch.stack([torch.randn(mean.shape, generator=generator, device=mean.device) for _ in range(count)])

    z = reparameterize(mean, logvar, draw_noise(1)[0])
    logits = model.decode(z)
    single = monte_carlo_elbo(x, logits, z, mean, logvar)
    exact = analytic_elbo(x, logits, mean, logvar)  # same z: the two ELBOs differ only in how the KL is computed
    iwae = importance_weighted_bound(x, mean, logvar, model.decode, k, max(1, decode_batch // len(x)), draw_noise)
    scores = {"elbo": single.elbo, "elbo_analytic": exact.elbo, "iwae": iwae, "recon": single.recon,
              "kl": single.kl, "kl_analytic": exact.kl}
    return scores, mean


def report_progress(before: int, seen: int, expected: int, elapsed: float) -> None:
    # A full k = 5000 run takes hours on a CPU: say how far along it is about ten times, with an estimate.
    step = max(1, expected // 10)
    if seen < expected and seen // step > before // step:
        left = elapsed / seen * (expected - seen)
        print(f"evaluated {seen}/{expected} test images in {elapsed:.1f} s (about {left:.0f} s left)", flush=True)


def write_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Strict JSON: a NaN or infinite value (weights that diverged) is written as null, with a warning on stderr."""
    bad = [name for name, value in metrics.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        print(f"warning: {', '.join(f'{name}={metrics[name]}' for name in bad)}: the checkpoint's weights give "
              f"non-finite values (did its run diverge?); written as null to {path}.", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: None if name in bad else value for name, value in metrics.items()},
                               indent=2, allow_nan=False) + "\n")


def format_table(metrics: dict[str, Any]) -> str:
    """Two aligned columns; floats with 4 decimals (ELBOs are in nats per image)."""
    width = max(map(len, metrics))
    rows = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    for name, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) and name != "wall_time_s" else str(value)
        rows.append(f"{name:<{width}}  {shown}")
    return "\n".join(rows)


def final_test(trainer: L.Trainer, datamodule: L.LightningDataModule, output_dir: Path) -> dict[str, float]:
    """Run `trainer.test` once on the held-out test set (best checkpoint if one was kept, else the final weights).

    The test/* metrics go to the run's loggers (its TensorBoard) and to <output_dir>/metrics.json.
    """
    callback = trainer.checkpoint_callback
    ckpt_path = "best" if callback is not None and getattr(callback, "best_model_path", "") else None
    results = trainer.test(datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, verbose=False)
    metrics = {name: float(value) for name, value in results[0].items()} if results else {}
    if trainer.is_global_zero:
        write_metrics({**metrics, "ckpt_path": trainer.ckpt_path or "final weights"}, output_dir / "metrics.json")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(evaluate, cfg)


if __name__ == "__main__":
    run(main, CONFIG_DIR, "eval")  # a misspelt key or bad value: one sentence, before any work
