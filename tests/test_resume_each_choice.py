"""Every model, objective, component and dataset choice survives a SIGKILL mid-epoch: resume, then evaluate and
sample it (issue 23: every likelihood, prior and posterior, model=hvae and a 32x32 colour model)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import compose_config
from tests.test_resume import kill_when, load, scalars, start
from vae_lab.evaluate import evaluate
from vae_lab.sample import sample

EPOCHS = 2
CHOICES = {
    "mlp_vae-dynamic": ["model=mlp_vae", "data.binarize=dynamic"],
    "iwae": ["objective=iwae", "model.k=3"],
    "beta": ["objective=beta", "model.beta=0.5"],
    # data.path is added below: an .npz of 28x28 uint8 images
    "images": ["data=images", "data.test_size=100", "data.binarize=static"],
    "likelihood-gaussian": ["likelihood=gaussian", "data.binarize=none"],
    "likelihood-discretized_logistic": ["likelihood=discretized_logistic", "data.binarize=none"],
    "prior-vamp": ["model=mlp_vae", "prior=vamp", "model.prior.components=10"],
    "prior-mog": ["prior=mog"],
    "posterior-iaf": ["posterior=iaf"],
    "hvae": ["model=hvae"],
    # data.path is added below: an .npz of 32x32 RGB images in (N, H, W, 3)
    "colour-32": ["data=images", "data.test_size=100", "model.image_shape=[3,32,32]",
                  "likelihood=discretized_logistic"],
}


def kill_mid_epoch_then_resume(run_dir: Path, marker: Path, overrides: list[str]) -> None:
    first = start(
        "accelerator=cpu", f"hydra.run.dir={run_dir}", f"trainer.max_epochs={EPOCHS}",
        "++trainer.limit_train_batches=3", "++trainer.limit_val_batches=1", "data.eval_batch_size=100",
        "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false", "~callbacks.latent_manifold",
        "~callbacks.reconstructions", "callbacks.gif.pacing=every", *overrides,
        "+callbacks.pause._target_=tests.pause_mid_epoch.PauseMidEpoch", f"+callbacks.pause.marker={marker}",
    )
    kill_when(first, marker)
    assert load(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 0  # only epoch 0 was complete when killed
    resumed = start(f"resume={run_dir}")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output


@pytest.mark.slow  # a subprocess killed and resumed per choice: make test-all
@pytest.mark.parametrize("choice", CHOICES, ids=list(CHOICES))
def test_a_killed_run_of_each_choice_resumes_then_evaluates_and_samples(
        tmp_path: Path, mnist_data_dir: Path, choice: str) -> None:
    overrides = [f"paths.data_dir={mnist_data_dir}", *CHOICES[choice]]
    if choice in ("images", "colour-32"):
        shape = (400, 28, 28) if choice == "images" else (400, 32, 32, 3)
        images = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
        np.savez(tmp_path / "images.npz", images=images)
        overrides += [f"data.path={tmp_path / 'images.npz'}", "data.batch_size=50"]
    run_dir = tmp_path / "run"
    kill_mid_epoch_then_resume(run_dir, tmp_path / "paused", overrides)

    last = run_dir / "checkpoints" / "last.ckpt"
    after = load(last)
    assert (after["epoch"], after["global_step"]) == (EPOCHS - 1, 3 * EPOCHS), (run_dir / "train.log").read_text()
    for tag in ("val/elbo", "val/loss"):
        steps = [step for step, _ in scalars(run_dir, tag)]
        assert len(steps) == EPOCHS == len(set(steps)), (tag, steps)  # one value per epoch across the kill
    # The resumed run kept its own choice: the checkpoint is of the chosen model and objective.
    hparams = after["hyper_parameters"]
    for override in CHOICES[choice]:
        key, value = override.split("=")
        if key.startswith("model.") and key.count(".") == 1 and not value.startswith("["):
            assert str(hparams[key.removeprefix("model.")]) == value
    if choice == "mlp_vae-dynamic":
        assert after["vae_lab"]["model"] == "vae_lab.models.mlp_vae.MLPVAE"
    if choice in ("images", "colour-32"):
        assert after["vae_lab"]["data"] == "vae_lab.data.images.ImageFiles"
    if choice == "colour-32":
        assert list(hparams["image_shape"]) == [3, 32, 32]
    if choice == "hvae":
        assert after["vae_lab"]["model"] == "vae_lab.models.hvae.HVAE"

    metrics = evaluate(compose_config("eval", [f"ckpt_path={last}", "iwae_samples=8", "num_images=50",
                                               f"paths.data_dir={mnist_data_dir}", f"output_dir={tmp_path / 'e'}"],
                                      tmp_path / "e"))
    assert metrics["num_images"] == 50
    assert math.isfinite(metrics["test/iwae"]) and metrics["test/iwae"] >= metrics["test/elbo"] - 5
    written = sample(compose_config("sample", [f"ckpt_path={last}", "n=4", f"output_dir={tmp_path / 's'}",
                                               f"paths.data_dir={mnist_data_dir}"], tmp_path / "s"))
    assert written[0].is_file() and written[0].stat().st_size > 0
    if choice == "colour-32":
        from PIL import Image

        with Image.open(written[0]) as picture:
            assert picture.mode == "RGB"  # colour kept in the PNGs
