"""`python -m vae_lab.evaluate ckpt_path=PATH [iwae_samples=5000] [num_images=N] [precision=32|bf16] [seed=S]`.

Scores a checkpoint on its run's test set (built by the run's own data module, binarized as in training) with
the numbers papers report, all from the model's own distributions through `model.log_weights(x, k)` (log p(x|z)
+ log p(z) - log q(z|x) for z ~ q(z|x), whatever its prior, posterior and likelihood):
  test/elbo, test/recon, test/kl   the single-sample ELBO (the tutorial's, as `val/elbo`) and its terms
  test/elbo_analytic, kl_analytic  the ELBO with KL(q || p) in closed form, where torch.distributions has one
                                   (a standard-normal or Gaussian prior; not a VampPrior or a mixture)
  test/iwae                        the importance-weighted bound with k = iwae_samples (Burda et al. 2016, eq. 8;
                                   k = 5000 estimates log p(x)); test/iwae_k_curve: the bound for k = 1, 10, 100,
                                   ... from the first k of the same draws (drawn in `iwae_k_curve.png`)
  test/bpd, test/iwae_bpd          the ELBO and the IWAE bound in bits per dimension (the likelihood's own rule)
  test/active_units                latent units whose posterior mean varies across the images (variance > 0.01)
Every per-image metric comes with its standard error over the test images (`test/iwae_se`, ...). Prints a table
and writes `metrics.json` beside the checkpoint (or into `output_dir`). The same seed (and batch_size and
decode_batch, which set how the draws are grouped) gives the same numbers. `precision=bf16` (opt-in) runs the
networks under bfloat16 autocast, the log-likelihoods and bounds in float32: several times faster where the CPU
has AMX, at a bias measured in the README ("Performance").

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

from vae_lab import CONFIG_DIR, run_dir
from vae_lab.atomic_files import atomic_write, atomic_write_text, check_writable
from vae_lab.console import print_end_block, quiet_third_party_warnings
from vae_lab.errors import ConfigError, check_positive, check_seed, exit_on_user_error, is_int, refuse
from vae_lab.preflight import check_device, check_memory, set_threads

if TYPE_CHECKING:
    import lightning as L
    from torch import Tensor
    from torch.distributions import Distribution

    from vae_lab.models.vae import VAE

TEST_SIZE = 10_000  # images in MNIST's official test set

# The k of the bound's curve over k (nested subsets of the iwae_samples draws); iwae_samples itself always ends it.
K_CURVE = (1, 10, 100, 1000, 5000)


class Moments:
    """Running sum and sum of squares of per-image values (float64): their mean and its standard error."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: Tensor) -> None:
        values = values.double()
        self.count += len(values)
        self.total += values.sum().item()
        self.squares += values.square().sum().item()

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def standard_error(self) -> float | None:
        """sd / sqrt(n) with the sample sd (n - 1); None for a single image."""
        if self.count < 2:
            return None
        variance = max(0.0, (self.squares - self.total**2 / self.count) / (self.count - 1))
        return math.sqrt(variance / self.count)


def require_ckpt_path(cfg: DictConfig, command: str) -> str:
    if not cfg.get("ckpt_path"):
        raise ConfigError(f"ckpt_path is missing; run `python -m {command} ckpt_path=<run dir>/checkpoints/last.ckpt`.")
    return str(cfg.ckpt_path)


def prepare_output(cfg: DictConfig, ckpt_path: str) -> Path:
    """The checks evaluate and sample share (seed, threads), then `output_dir` (null: beside the checkpoint),
    created and found writable before the work rather than after it."""
    check_seed("seed", cfg.seed)
    set_threads(cfg.threads)
    if cfg.output_dir is not None and (not isinstance(cfg.output_dir, str | Path) or Path(cfg.output_dir).is_file()):
        raise refuse("output_dir", cfg.output_dir, "null (beside the checkpoint) or a folder, which is created if "
                                                   "missing")
    output_dir = Path(cfg.output_dir) if cfg.output_dir else Path(ckpt_path).resolve().parent
    check_writable(output_dir)
    return output_dir


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score `cfg.ckpt_path` on the test set; write metrics.json, print the table, return the metrics."""
    started = time.perf_counter()
    ckpt_path = require_ckpt_path(cfg, "vae_lab.evaluate")
    for key, example in (("iwae_samples", 5000), ("batch_size", 100), ("decode_batch", 100)):
        check_positive(key, cfg[key], example)
    if cfg.num_images is not None and not (is_int(cfg.num_images) and 1 <= cfg.num_images <= TEST_SIZE):
        raise refuse("num_images", cfg.num_images, f"null (all {TEST_SIZE} test images) or a number from 1 to "
                                                   f"{TEST_SIZE}")
    if cfg.precision not in (32, "32", "bf16"):
        raise refuse("precision", cfg.precision, "32 (float32, the default) or bf16 (the networks in bfloat16: faster "
                                                 "on CPUs with AMX, biased by a few hundredths of a nat)")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise refuse("device", cfg.device, "auto, cpu or cuda")
    device = check_device("device", cfg.device)
    check_memory(cfg)  # images encoded and decoded at once (batch_size, decode_batch)
    output_dir = prepare_output(cfg, ckpt_path)  # before the (up to an hour of) scoring, not after it

    import torch

    from vae_lab.callbacks.epoch_images import seeded
    from vae_lab.callbacks.posterior import count_active_units
    from vae_lab.checkpoints import load_checkpoint, test_batches

    checkpoint = load_checkpoint(ckpt_path)
    model = checkpoint.model.to(device)
    # oneDNN's transposed convolutions run ~1.5x faster on channels-last weights on CPU; the math is unchanged.
    decoder = getattr(model, "decoder", None)  # a hierarchical model may name its networks otherwise
    if isinstance(decoder, torch.nn.Module):
        decoder.to(memory_format=torch.channels_last)
    ks = curve_ks(cfg.iwae_samples)
    bf16 = cfg.precision == "bf16"
    moments: dict[str, Moments] = {}
    curve = {k: Moments() for k in ks}
    posterior_means, seen = [], 0
    expected = cfg.num_images or TEST_SIZE
    # Every draw (z ~ q(z|x) inside the model) comes from torch's global stream, seeded here and restored after.
    with seeded(cfg.seed, device), torch.inference_mode():
        for x, _ in test_batches(checkpoint, cfg.paths.data_dir, cfg.batch_size, cfg.num_images):
            x = x.to(device)
            scores, bounds = score_batch(model, x, ks, max(1, cfg.decode_batch // len(x)), bf16)
            for name, values in scores.items():
                moments.setdefault(name, Moments()).add(values)
            for k, values in bounds.items():
                curve[k].add(values)
            posterior_means.append(model.posterior_mean(x).double().cpu())
            seen += len(x)
            report_progress(seen - len(x), seen, expected, time.perf_counter() - started)
    variances = torch.cat(posterior_means).var(dim=0, correction=0)
    metrics: dict[str, Any] = {}
    for name, values in moments.items():
        metrics[f"test/{name}"] = values.mean
        metrics[f"test/{name}_se"] = values.standard_error
    metrics["test/active_units"] = count_active_units(variances)
    # JSON keys are strings; a non-finite point (diverged weights) is null, as write_metrics writes test/iwae.
    metrics["test/iwae_k_curve"] = {str(k): finite_or_none(values.mean) for k, values in curve.items()}
    metrics["test/iwae_k_curve_se"] = {str(k): finite_or_none(values.standard_error) for k, values in curve.items()}
    metrics.update(iwae_samples=cfg.iwae_samples, num_images=seen, seed=cfg.seed,
                   precision=str(cfg.precision),
                   ckpt_path=str(Path(ckpt_path).resolve()), wall_time_s=round(time.perf_counter() - started, 2))
    print(format_table(metrics), flush=True)  # printed first: a write that fails loses nothing computed
    write_metrics(metrics, output_dir / "metrics.json")
    plot_k_curve(metrics, output_dir / "iwae_k_curve.png")
    return metrics


def curve_ks(iwae_samples: int) -> tuple[int, ...]:
    """The k of the curve: those of K_CURVE below iwae_samples, then iwae_samples (the curve's last point)."""
    return (*(k for k in K_CURVE if k < iwae_samples), iwae_samples)


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def score_batch(model: VAE, x: Tensor, ks: tuple[int, ...], samples_per_call: int, bf16: bool = False
                ) -> tuple[dict[str, Tensor], dict[int, Tensor]]:
    """Per-image scores of one batch (in table order) and the IWAE bound for each k of `ks`, all from the model's
    own distributions: q = encode(x) once, then max(ks) draws z ~ q of log p(x|z) + log p(z) - log q(z|x), taken
    `samples_per_call` at a time (`log_weights`). The first draw is also the ELBO and its terms (`recon`, `kl`);
    the bound for k uses the first k draws (nested). `bf16`: the draws' networks under bfloat16 autocast (the
    likelihood and prior score in float32). Draws come from torch's global random stream."""
    import torch

    from vae_lab.objectives import nested_iwae_bounds

    q = model.encode(x)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        log_px, log_pz, log_qz, _ = model.log_weight_terms(x, 1, posterior=q)
    first = [(log_px + log_pz - log_qz).float()]

    def log_weights(count: int) -> Tensor:
        drawn = [first.pop()] if first else []  # the ELBO's draw opens the sequence the bounds nest over
        if count > len(drawn):
            with autocast:
                drawn.append(model.log_weights(x, count - len(drawn), posterior=q).float())
        return torch.cat(drawn)

    elbo, recon, kl = (log_px + log_pz - log_qz)[0].float(), log_px[0].float(), (log_qz - log_pz)[0].float()
    bounds = nested_iwae_bounds(log_weights, ks, samples_per_call, len(x), like=elbo)
    num_dims = math.prod(model.image_shape)
    scores = {"elbo": elbo, "iwae": bounds[max(ks)], "recon": recon, "kl": kl,
              "bpd": model.likelihood.bits_per_dim(elbo, num_dims),
              "iwae_bpd": model.likelihood.bits_per_dim(bounds[max(ks)], num_dims)}
    exact_kl = closed_form_kl(model, q)
    if exact_kl is not None:  # same z: the two ELBOs differ only in how the KL is computed
        scores.update(elbo_analytic=recon - exact_kl, kl_analytic=exact_kl)
    return scores, bounds


def closed_form_kl(model: VAE, q: Distribution) -> Tensor | None:
    """KL(q(z|x) || p(z)) per image where torch.distributions registers a closed form for the pair, else None."""
    from torch.distributions import kl_divergence

    try:
        return kl_divergence(q, model.prior.distribution()).float()
    except NotImplementedError:
        return None


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
    atomic_write_text(path, json.dumps({name: None if name in bad else value for name, value in metrics.items()},
                                       indent=2, allow_nan=False) + "\n")


def plot_k_curve(metrics: dict[str, Any], path: Path) -> None:
    """The bound against k (log axis) with +-1 standard error bars: how far from converged test/iwae is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [(int(k), value, metrics["test/iwae_k_curve_se"][k] or 0.0)
              for k, value in metrics["test/iwae_k_curve"].items() if value is not None]
    figure = Figure(figsize=(5, 3.5), dpi=100)
    FigureCanvasAgg(figure)  # Agg draws without a display and without pyplot's global state
    axes = figure.add_subplot()
    if points:
        ks, values, errors = zip(*points, strict=True)
        axes.errorbar(ks, values, yerr=errors, marker="o", capsize=3)
    axes.set(xscale="log", xlabel="k (importance samples, nested)", ylabel="IWAE bound (nats per image)",
             title=f"IWAE bound vs k, {metrics['num_images']} test images")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda stream: figure.savefig(stream, format="png"))


def format_table(metrics: dict[str, Any]) -> str:
    """Aligned columns; floats with 4 decimals (ELBOs are in nats per image), each with its standard error."""
    rows_in = [(name, value, metrics.get(f"{name}_se")) for name, value in metrics.items()
               if not name.endswith("_se") and not isinstance(value, dict)]
    rows_in += [(f"test/iwae k={k}", value, metrics["test/iwae_k_curve_se"][k])
                for k, value in metrics.get("test/iwae_k_curve", {}).items()]
    width = max(len(name) for name, _, _ in rows_in)
    rows = [f"{'metric':<{width}}  {'value':>12}  standard error", f"{'-' * width}  {'-' * 12}  {'-' * 14}"]
    for name, value, error in rows_in:
        shown = f"{value:12.4f}" if isinstance(value, float) and name != "wall_time_s" else f"{value!s:>12}"
        rows.append(f"{name:<{width}}  {shown}" + (f"  {error:.4f}" if error is not None else ""))
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
    quiet_third_party_warnings()
    metrics = exit_on_user_error(evaluate, cfg)
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else Path(metrics["ckpt_path"]).parent
    headline = {name: value for name, value in metrics.items()
                if name.startswith("test/") and not name.endswith(("_se", "_analytic")) and not isinstance(value, dict)}
    print_end_block(f"evaluated {metrics['ckpt_path']} ({metrics['num_images']} test images, k={cfg.iwae_samples})",
                    headline, notes=[f"wrote {output_dir / 'metrics.json'} and {output_dir / 'iwae_k_curve.png'}"],
                    logdir=Path(run_dir(str(metrics["ckpt_path"]), "")))


if __name__ == "__main__":
    main()
