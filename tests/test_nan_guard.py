"""A diverging run stops at the first non-finite step, naming it, with the batch and the last good weights saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vae_lab.callbacks.nan_guard import NonFiniteTrainingError
from vae_lab.cvae import CVAE, LOGVAR_MAX, LOGVAR_MIN
from vae_lab.train import train


def test_lr_1e6_stops_with_one_sentence_and_saves_batch_and_weights(make_train_cfg) -> None:
    cfg = make_train_cfg("model.lr=1e6", "callbacks=nan_guard", "logger=none")
    run_dir = Path(cfg.paths.output_dir)
    with pytest.raises(NonFiniteTrainingError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith("Training diverged at epoch 0, step ")
    assert "\n" not in message and message.endswith("lower model.lr (now 1000000.0) and start again.")

    saved = torch.load(run_dir / "nan_batch.pt", weights_only=True)
    images, labels = saved["batch"]
    assert images.shape == (100, 1, 28, 28) and labels.shape == (100,)
    assert f"epoch {saved['epoch']}, step {saved['step']} (batch {saved['batch_idx']})" in message

    good = torch.load(run_dir / "checkpoints" / "last_good.ckpt", weights_only=True)
    assert good["global_step"] == saved["step"]  # the weights before the bad update, all finite
    assert all(torch.isfinite(value).all() for value in good["state_dict"].values())


def test_logvar_clamp_leaves_normal_values_alone() -> None:
    torch.manual_seed(0)
    model = CVAE(latent_dim=4)
    x = torch.rand(8, 1, 28, 28)
    _, raw = model.encoder(x)
    _, clamped = model.encode(x)
    assert raw.abs().max() < 5 and torch.equal(raw, clamped)
    with torch.no_grad():
        model.encoder.dense.bias[4:].fill_(1e4)  # the log-variance half of the encoder's output
    _, huge = model.encode(x)
    assert huge.max() == LOGVAR_MAX and torch.isfinite(torch.exp(huge)).all() and LOGVAR_MIN < 0
