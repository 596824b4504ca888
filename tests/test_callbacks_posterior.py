"""Posterior diagnostics in a real 2-epoch run, read back from TensorBoard's event files and recomputed."""

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vae_lab.callbacks.posterior import ACTIVE_UNIT_THRESHOLD, PosteriorSums, count_active_units
from vae_lab.checkpoints import load_checkpoint
from vae_lab.config_checks import build
from vae_lab.objectives import analytic_kl
from vae_lab.train import train


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0,
                                                                                  "images": 0})
    return accumulator.Reload()


@pytest.mark.parametrize(("model", "latent_dim", "batches"), [("cvae", 4, 4), ("mlp_vae", 6, 30)])
def test_each_validation_epoch_logs_kl_per_dimension_active_units_and_variance(
    make_train_cfg, model: str, latent_dim: int, batches: int
) -> None:
    cfg = make_train_cfg(f"model={model}", f"model.latent_dim={latent_dim}", "model.kl=analytic",
                         "trainer.max_epochs=2", f"++trainer.limit_train_batches={batches}",
                         "callbacks/each=[model_checkpoint,posterior]")
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    logged = events(run_dir)

    assert {"val/active_units", "val/posterior_variance"} <= set(logged.Tags()["scalars"])
    units = [event.value for event in logged.Scalars("val/active_units")]
    variances = [event.value for event in logged.Scalars("val/posterior_variance")]
    kls = [event.value for event in logged.Scalars("val/kl")]
    assert len(units) == len(variances) == 2  # one per epoch, none from the sanity check
    assert all(unit == int(unit) and 0 <= unit <= latent_dim for unit in units)
    assert all(0 < variance < 10 for variance in variances)

    histograms = logged.Histograms("val/kl_per_dim")
    assert [event.step for event in histograms] == [1, 2]  # epochs trained, as the other images
    for histogram, kl in zip(histograms, kls, strict=True):
        assert histogram.histogram_value.num == latent_dim and histogram.histogram_value.min >= 0
        # the dimensions' KLs add up to the epoch's mean analytic KL, which the model logged as val/kl
        assert histogram.histogram_value.sum == pytest.approx(kl, rel=1e-4, abs=1e-5)
    images = logged.Images("val/kl_per_dim_sorted")
    assert [event.step for event in images] == [1, 2] and images[0].width == 480 and images[0].height == 256

    # Recomputed from the final weights on the same two validation batches: the last epoch's numbers.
    model_ = load_checkpoint(run_dir / "checkpoints" / "last.ckpt").model
    datamodule = build(cfg.data)
    datamodule.setup("fit")
    means, logvars = [], []
    with torch.no_grad():
        for index, (x, _) in enumerate(datamodule.val_dataloader()):
            if index == 2:
                break
            mean, logvar = model_.encode(x)
            means.append(mean.double())
            logvars.append(logvar.double())
    mean, logvar = torch.cat(means), torch.cat(logvars)
    assert units[-1] == metrics["val/active_units"] == int((mean.var(dim=0, correction=0) > 0.01).sum())
    assert variances[-1] == pytest.approx(logvar.exp().mean().item(), rel=1e-5)
    assert histograms[-1].histogram_value.sum == pytest.approx(analytic_kl(mean, logvar).mean().item(), rel=1e-5)
    if model == "mlp_vae":  # 60 steps of Adam at 1e-3 move some posterior means apart
        assert units[-1] > 0


def test_posterior_sums_match_the_two_pass_statistics() -> None:
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.001, 0.2, 0.5, 2.0])  # one unit clearly inactive, three active
    mean = torch.randn(300, 4, generator=generator) * scale + 5.0
    logvar = torch.randn(300, 4, generator=generator) - 1.0
    sums = PosteriorSums()
    for start in range(0, 300, 64):  # uneven batches
        sums.add(mean[start : start + 64], logvar[start : start + 64])
    expected_variance = mean.double().var(dim=0, correction=0)
    assert torch.allclose(sums.mean_variance(), expected_variance, rtol=1e-9, atol=1e-12)
    assert count_active_units(sums.mean_variance()) == int((expected_variance > ACTIVE_UNIT_THRESHOLD).sum()) == 3
    assert sums.kl_per_dimension().sum().item() == pytest.approx(analytic_kl(mean.double(), logvar.double())
                                                                 .mean().item(), rel=1e-12)
    assert sums.posterior_variance() == pytest.approx(logvar.double().exp().mean().item(), rel=1e-12)
