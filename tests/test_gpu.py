"""Training on a CUDA GPU (marked `gpu`, skipped without CUDA; benchmarks/gpu_check.sh runs them on a GPU machine).

The data is a small .npz of random images (`data=images`), so these tests need no MNIST files on the GPU machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from tests.conftest import compose_config
from vae_lab.models.cvae import CVAE
from vae_lab.train import train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


class DeviceProbe(L.Callback):
    """Records where the first training batch ran, and in which dtypes (class attribute: read after train())."""

    seen: dict[str, object] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            with trainer.precision_plugin.forward_context():
                logits = pl_module.decoder(torch.zeros(2, pl_module.latent_dim, device=pl_module.device))
            DeviceProbe.seen = {"device": pl_module.device.type, "batch_device": batch[0].device.type,
                                "weights": {p.dtype for p in pl_module.parameters()}, "compute": logits.dtype}


def random_images(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, train=rng.integers(0, 256, (400, 28, 28), dtype=np.uint8),
             test=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8))
    return path


def gpu_config(tmp_path: Path, *overrides: str):
    return compose_config("train", [
        "accelerator=gpu", "data=images", f"data.path={random_images(tmp_path / 'images.npz')}", "data.binarize=static",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=4", "++trainer.limit_val_batches=2", "++trainer.enable_progress_bar=false",
        "+callbacks.probe._target_=tests.test_gpu.DeviceProbe", *overrides,
    ], tmp_path / "run")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_training_run_on_cuda_has_a_finite_loss(precision: str, tmp_path: Path) -> None:
    metrics = train(gpu_config(tmp_path, f"trainer.precision={precision}", "callbacks=none"))
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/elbo"])
    assert metrics["val/elbo"] < 0
    seen = DeviceProbe.seen
    assert seen["device"] == "cuda" and seen["batch_device"] == "cuda"  # data.data_device=auto: batches on the GPU
    assert seen["weights"] == {torch.float32}  # mixed precision keeps fp32 weights
    assert seen["compute"] == (torch.bfloat16 if precision == "bf16-mixed" else torch.float32)


def test_a_checkpoint_written_on_cuda_reloads_on_cpu(tmp_path: Path) -> None:
    cfg = gpu_config(tmp_path, "trainer.precision=bf16-mixed", "callbacks=none",
                     "+callbacks.last._target_=lightning.pytorch.callbacks.ModelCheckpoint",
                     f"+callbacks.last.dirpath={tmp_path / 'run' / 'checkpoints'}", "+callbacks.last.filename=last")
    train(cfg)
    model = CVAE.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    x = (torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    with torch.no_grad():
        on_cpu = model.reconstruct(x)
        on_gpu = model.to("cuda").reconstruct(x.to("cuda")).cpu()
    assert on_cpu.shape == (8, 1, 28, 28) and torch.isfinite(on_cpu).all()
    torch.testing.assert_close(on_cpu, on_gpu, atol=1e-3, rtol=1e-3)  # the same weights on either device
