"""Posterior diagnostics in a real 2-epoch run, read back from TensorBoard's event files and recomputed."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from vae_lab.callbacks.posterior import ACTIVE_UNIT_THRESHOLD, PosteriorDiagnostics, PosteriorSums, count_active_units
from vae_lab.checkpoints import load_checkpoint
from vae_lab.train import build, train


def standard_normal_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per image, summed over dimensions, by the textbook formula."""
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=-1)


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
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    means, logvars = [], []
    with torch.no_grad():
        for index, (x, _) in enumerate(datamodule.val_dataloader()):
            if index == 2:
                break
            q = model_.encode(x)
            means.append(q.mean.double())
            logvars.append(q.variance.log().double())
    mean, logvar = torch.cat(means), torch.cat(logvars)
    assert units[-1] == metrics["val/active_units"] == int((mean.var(dim=0, correction=0) > 0.01).sum())
    assert variances[-1] == pytest.approx(logvar.exp().mean().item(), rel=1e-5)
    assert histograms[-1].histogram_value.sum == pytest.approx(standard_normal_kl(mean, logvar).mean().item(),
                                                               rel=1e-5)
    if model == "mlp_vae":  # 60 steps of Adam at 1e-3 move some posterior means apart
        assert units[-1] > 0


def test_posterior_sums_match_the_two_pass_statistics() -> None:
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.001, 0.2, 0.5, 2.0])  # one unit clearly inactive, three active
    mean = torch.randn(300, 4, generator=generator) * scale + 5.0
    logvar = torch.randn(300, 4, generator=generator) - 1.0
    q = Normal(mean, (0.5 * logvar).exp())
    kl = kl_divergence(q, Normal(torch.zeros(4), torch.ones(4)))
    sums = PosteriorSums()
    for start in range(0, 300, 64):  # uneven batches
        sums.add(mean[start : start + 64], q.variance[start : start + 64], kl[start : start + 64])
    expected_variance = mean.double().var(dim=0, correction=0)
    assert torch.allclose(sums.mean_variance(), expected_variance, rtol=1e-9, atol=1e-12)
    assert count_active_units(sums.mean_variance()) == int((expected_variance > ACTIVE_UNIT_THRESHOLD).sum()) == 3
    assert sums.kl_per_dimension().sum().item() == pytest.approx(standard_normal_kl(mean.double(), logvar.double())
                                                                 .mean().item(), rel=1e-6)
    assert sums.posterior_variance() == pytest.approx(logvar.double().exp().mean().item(), rel=1e-6)
    without = PosteriorSums()  # a flow's q: no closed-form variance or per-dimension KL, the means only
    without.add(mean)
    assert without.posterior_variance() is None and without.kl_per_dimension() is None


def test_the_scalars_are_logged_with_sync_dist_and_a_vamp_prior_gets_no_per_dimension_kl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 24: under DDP val/active_units and val/posterior_variance came from rank 0's shard; the sums are reduced
    # across ranks and the scalars logged with sync_dist=True, so Lightning knows every rank holds the same value.
    from lightning import LightningModule

    from vae_lab.models.mlp_vae import MLPVAE

    logged: dict[str, dict] = {}
    monkeypatch.setattr(LightningModule, "log", lambda self, name, value, **kwargs: logged.setdefault(name, kwargs))
    model = MLPVAE(latent_dim=3, hidden=8, prior={"_target_": "vae_lab.priors.VampPrior", "components": 4}).eval()
    trainer = SimpleNamespace(sanity_checking=False, loggers=[], is_global_zero=True, current_epoch=0,
                              strategy=SimpleNamespace(reduce=lambda value, reduce_op: value))
    callback = PosteriorDiagnostics()
    callback.on_validation_epoch_start(trainer, model)
    x = torch.rand(10, 1, 28, 28).round()
    callback.on_validation_batch_end(trainer, model, None, (x, torch.zeros(10)), 0)
    callback.on_validation_epoch_end(trainer, model)
    assert set(logged) == {"val/active_units", "val/posterior_variance"}
    assert all(kwargs.get("sync_dist") is True for kwargs in logged.values())
    assert callback.sums.kl_per_dimension() is None  # a mixture prior has no per-dimension closed-form KL
    expected = model.encode(x).variance.double().mean().item()
    assert callback.sums.posterior_variance() == pytest.approx(expected, rel=1e-6)
