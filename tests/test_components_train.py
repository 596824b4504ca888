"""Every component option trains through `train(cfg)`, writes a checkpoint, and reloads as the same model; a 32x32
colour conv model trains with each likelihood; Burda's learning-rate schedule; the old models keep their numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose_config
from vae_lab.checkpoints import load_checkpoint
from vae_lab.evaluate import evaluate
from vae_lab.models import MLPVAE
from vae_lab.sample import sample
from vae_lab.train import train

CONTINUOUS = ("gaussian", "discretized_logistic")  # likelihoods of 8-bit data (data.binarize=none)
OPTIONS = {
    "likelihood=gaussian": ["likelihood=gaussian"],
    "likelihood=gaussian-shared": ["likelihood=gaussian", "model.likelihood.variance=shared"],
    "likelihood=discretized_logistic": ["likelihood=discretized_logistic", "model.likelihood.components=3"],
    "prior=mog": ["prior=mog", "model.prior.components=3"],
    "prior=vamp": ["prior=vamp", "model.prior.components=5"],
    "posterior=iaf": ["posterior=iaf", "model.posterior.hidden=32"],
    "model=hvae": ["model=hvae"],
    "model=hvae-prior=mog": ["model=hvae", "prior=mog"],
    "model=mlp_vae-warmup-free_bits": ["model=mlp_vae", "model.warmup_epochs=3", "model.free_bits=1.0"],
    "optimizer=adamw": ["optimizer=adamw"],
    "optimizer=sgd": ["optimizer=sgd"],
    "scheduler=burda": ["scheduler=burda"],
}
# Tiny runs on an .npz of random images (written per test): 2 training batches, 1 validation batch.
TINY = ["accelerator=cpu", "data=images", "data.test_size=20", "data.batch_size=20", "data.eval_batch_size=20",
        "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false"]


def images_npz(path: Path, shape: tuple[int, ...]) -> Path:
    np.savez(path, images=(np.random.default_rng(0).random(shape) * 255).astype(np.uint8))
    return path


def binarize_for(overrides: list[str]) -> str:
    continuous = any(override in (f"likelihood={name}" for name in CONTINUOUS) for override in overrides)
    return "data.binarize=none" if continuous else "data.binarize=static"


def train_and_reload(tmp_path: Path, overrides: list[str], data: Path) -> tuple[dict, torch.nn.Module, Path]:
    run_dir = tmp_path / "run"
    cfg = compose_config("train", [*TINY, f"data.path={data}", binarize_for(overrides), *overrides], run_dir)
    metrics = train(cfg)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    loaded = load_checkpoint(last).model
    # The checkpoint's weights in a model built afresh from the run's config: the same log-weights, same noise.
    fresh = instantiate(cfg.model)
    fresh.load_state_dict(torch.load(last, map_location="cpu", weights_only=True)["state_dict"])
    x = torch.from_numpy(np.load(data)["images"][:4]).float().div(255)
    x = x.reshape(4, *loaded.image_shape[1:], -1).permute(0, 3, 1, 2)  # (N, H, W[, C]) -> (N, C, H, W)
    if binarize_for(overrides).endswith("static"):
        x = (x > 0.5).float()
    with torch.no_grad():
        torch.manual_seed(0)
        reloaded = loaded.log_weights(x, 3)
        torch.manual_seed(0)
        rebuilt = fresh.eval().log_weights(x, 3)
    assert reloaded.shape == (3, 4) and torch.isfinite(reloaded).all()
    torch.testing.assert_close(reloaded, rebuilt, rtol=0, atol=0)
    return metrics, loaded, last


@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
def test_each_component_option_trains_reloads_evaluates_and_samples(tmp_path: Path, option: str) -> None:
    overrides = OPTIONS[option]
    metrics, model, last = train_and_reload(tmp_path, overrides, images_npz(tmp_path / "grey.npz", (60, 28, 28)))
    assert math.isfinite(metrics["val/elbo"]) and math.isfinite(metrics["val/bpd"]) and metrics["val/bpd"] > 0
    scores = evaluate(compose_config("eval", [f"ckpt_path={last}", "iwae_samples=4", "num_images=8",
                                              f"output_dir={tmp_path / 'e'}"], tmp_path / "e"))
    assert scores["num_images"] == 8 and math.isfinite(scores["test/iwae"]) and math.isfinite(scores["test/bpd"])
    written = sample(compose_config("sample", [f"ckpt_path={last}", "n=4", f"output_dir={tmp_path / 's'}"],
                                    tmp_path / "s"))
    assert written[0].is_file() and written[0].stat().st_size > 0
    for override in overrides:  # the checkpoint holds the chosen component
        group, _, choice = override.partition("=")
        if group in ("likelihood", "prior", "posterior"):
            assert model.hparams[group]["_target_"] == OmegaConf.load(CONF_DIR / group / f"{choice}.yaml")._target_
    if "model=hvae" in overrides:
        assert type(model).__name__ == "HVAE" and model.posterior_mean(torch.zeros(2, 1, 28, 28)).shape == (2, 150)


@pytest.mark.parametrize("likelihood", ["bernoulli", *CONTINUOUS])
def test_a_32x32_colour_conv_model_trains_with_each_likelihood(tmp_path: Path, likelihood: str) -> None:
    data = images_npz(tmp_path / "colour.npz", (60, 32, 32, 3))  # (N, H, W, C), as image libraries write them
    overrides = [f"likelihood={likelihood}", "model=cvae", "model.image_shape=[3,32,32]"]
    metrics, model, _ = train_and_reload(tmp_path, overrides, data)
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/elbo"])
    mean = model.decode(torch.randn(5, model.latent_dim)).mean
    assert mean.shape == (5, 3, 32, 32) and 0 <= mean.min() and mean.max() <= 1
    assert model.sample(2).shape == (2, 3, 32, 32)


def test_burda_schedule_is_lr_1e_3_times_10_to_the_minus_i_over_7_for_3_to_the_i_epochs() -> None:
    scheduler_cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "scheduler" / "burda.yaml"))
    model = MLPVAE(latent_dim=2, hidden=4, image_shape=(1, 2, 2), lr=1e-3, scheduler=scheduler_cfg)
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "epoch"
    starts = [sum(3**j for j in range(i)) for i in range(9)]  # 0, 1, 4, 13, 40, 121, 364, 1093, 3280
    for epoch in range(3280):
        i = next(i for i in range(8) if starts[i] <= epoch < starts[i + 1])
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 10 ** (-i / 7), rel=1e-9), epoch
        optimizer.step()
        scheduler.step()


@pytest.mark.slow
@pytest.mark.parametrize(("model", "val_elbo"), [("cvae", -534.1142), ("mlp_vae", -210.2616)])
def test_the_old_models_keep_their_default_val_elbo(tmp_path: Path, mnist_data_dir: Path, model: str,
                                                    val_elbo: float) -> None:
    # `python -m vae_lab.train model=<model> trainer.max_epochs=1 +trainer.limit_train_batches=30
    # +trainer.limit_val_batches=3 callbacks=none logger=none`: cvae's value before the contract (af54bf7) and after
    # it (ff145e1); mlp_vae's at f53cd25 and after the components were added.
    cfg = compose_config("train", [f"model={model}", f"paths.data_dir={mnist_data_dir}", "trainer.max_epochs=1",
                                   "callbacks=none", "logger=none", "+trainer.limit_train_batches=30",
                                   "+trainer.limit_val_batches=3"], tmp_path / "run")
    assert train(cfg)["val/elbo"] == pytest.approx(val_elbo, abs=1e-4)
