"""A diverging run stops at the first non-finite step, naming it, with the batch and the last good weights saved."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor

from vae_lab.callbacks.nan_guard import NanGuard, NonFiniteTrainingError
from vae_lab.errors import VaeLabError
from vae_lab.models.cvae import CVAE
from vae_lab.posteriors import LOGVAR_MAX, LOGVAR_MIN
from vae_lab.train import train


def test_lr_1e6_stops_with_one_sentence_and_saves_batch_and_weights(make_train_cfg) -> None:
    cfg = make_train_cfg("model.lr=1e6", "callbacks/each=[nan_guard]", "logger=none")
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


def test_logvar_clamp_leaves_normal_values_alone_and_keeps_a_huge_one_finite() -> None:
    torch.manual_seed(0)
    model = CVAE(latent_dim=4)
    x = torch.rand(8, 1, 28, 28)
    logvar = model.encoder(x).chunk(2, dim=-1)[1]  # the encoder's features: [mean, logvar]
    assert logvar.abs().max() < 5 and torch.equal(model.encode(x).base_dist.scale, (0.5 * logvar).exp())
    with torch.no_grad():
        model.encoder.dense.bias[4:].fill_(1e4)  # the log-variance half of the encoder's output
    q = model.encode(x)  # posteriors.diagonal_gaussian clamps logvar to [LOGVAR_MIN, LOGVAR_MAX]
    assert torch.equal(q.base_dist.scale.max(), torch.tensor(0.5 * LOGVAR_MAX).exp()) and LOGVAR_MIN < 0
    assert torch.isfinite(q.log_prob(q.rsample())).all()


class InfiniteGradient(L.LightningModule):
    """A finite loss, sqrt(|w|) = 0 at w = 0, whose gradient is not finite there."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return torch.sqrt(self.w.abs()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self) -> list[Tensor]:
        return [torch.zeros(1)] * 3


def test_a_non_finite_gradient_with_a_finite_loss_is_caught(tmp_path: Path) -> None:
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=[NanGuard()],
    )
    with pytest.raises(NonFiniteTrainingError, match=r"^Training diverged at epoch 0, step 0 \(batch 0\): the "
                       r"gradient is not finite \(loss=0.0\)"):
        trainer.fit(InfiniteGradient())
    assert (tmp_path / "nan_batch.pt").is_file() and (tmp_path / "checkpoints" / "last_good.ckpt").is_file()


def test_an_exploding_but_finite_loss_stops_the_run(make_train_cfg) -> None:
    # model.lr=1e9 used to complete with val/elbo -4.7e22 and no word: finite, so no NaN check fired.
    cfg = make_train_cfg("model=mlp_vae", "model.lr=1e9", "callbacks=none", "logger=none",
                         "+callbacks.nan_guard._target_=vae_lab.callbacks.nan_guard.NanGuard")
    with pytest.raises(NonFiniteTrainingError, match=r"callbacks\.nan_guard\.max_loss=1e\+06"):
        train(cfg)
    assert (Path(cfg.paths.output_dir) / "nan_batch.pt").is_file()
    NanGuard(max_loss=None)  # no limit
    with pytest.raises(VaeLabError, match=r"^callbacks.nan_guard.max_loss=0 is not allowed"):
        NanGuard(max_loss=0)
