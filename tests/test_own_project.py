"""A model, a prior and a dataset from the user's own folder (tests/toy_project): trained and evaluated in-process,
and (slow) through a wheel-installed vae_lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT, compose_config

TOY = REPO_ROOT / "tests" / "toy_project"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """vae_lab built as a wheel and installed into its own folder, first on PYTHONPATH (before the editable copy)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(root), str(REPO_ROOT)], check=True, capture_output=True)
    wheel = next(root.glob("vae_lab-*.whl"))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{TOY}", "HYDRA_FULL_ERROR": "0"}


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_a_vamp_style_model_from_the_user_s_folder_evaluates_to_its_own_val_elbo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The toy model's prior is its own class (toy_vae.PseudoImagePrior, a VampPrior over the toy encoder), chosen by
    # its own YAML (prior=toy_vamp). evaluate must score p(z) with it: its single-sample ELBO on the 1,000 test
    # images the run validated on is within sampling noise of the run's val/elbo; scored with N(0, I) it is not.
    from vae_lab.checkpoints import load_checkpoint, test_batches
    from vae_lab.evaluate import evaluate
    from vae_lab.train import train

    monkeypatch.syspath_prepend(str(TOY))
    search, threads = f"hydra.searchpath=[file://{TOY / 'conf'}]", torch.get_num_threads()
    try:
        metrics = train(compose_config("train", [
            search, "model=toy", "prior=toy_vamp", "data=toy", "accelerator=cpu", "trainer.max_epochs=50",
            "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
            "callbacks/each=[model_checkpoint]",
            "logger=none", "threads=1"], tmp_path / "run"))
        last = tmp_path / "run" / "checkpoints" / "last.ckpt"
        scored = evaluate(compose_config("eval", [f"ckpt_path={last}", f"output_dir={tmp_path}", "iwae_samples=1",
                                                  "device=cpu", "threads=1"], tmp_path))
    finally:
        torch.set_num_threads(threads)
    model = load_checkpoint(last).model
    assert type(model.prior).__name__ == "PseudoImagePrior" and scored["num_images"] == 1000
    assert abs(scored["test/elbo"] - metrics["val/elbo"]) < 0.3, (scored["test/elbo"], metrics["val/elbo"])
    x, _ = next(test_batches(load_checkpoint(last), "", 1000))
    with torch.no_grad():
        log_px, _, log_qz, z = model.log_weight_terms(x, 1)
        as_if_standard = (log_px + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - log_qz).mean().item()
    assert abs(as_if_standard - metrics["val/elbo"]) > 5, (as_if_standard, metrics["val/elbo"])


@pytest.mark.slow
def test_toy_model_and_dataset_run_the_whole_pipeline(installed: dict[str, str], tmp_path: Path) -> None:
    where = run(installed, tmp_path, "-c", "import vae_lab; print(vae_lab.__file__)").stdout
    assert str(REPO_ROOT / "src") not in where  # the wheel's copy, configs shipped inside it
    search = f"hydra.searchpath=[file://{TOY / 'conf'}]"
    common = [search, "model=toy", "prior=toy_vamp", "data=toy", "accelerator=cpu",
              "++trainer.enable_progress_bar=false", "callbacks.latent_manifold.num_points=20"]
    run_dir = tmp_path / "run"
    run(installed, tmp_path, "-m", "vae_lab.train", *common, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    run(installed, tmp_path, "-m", "vae_lab.train", f"resume={run_dir}", "trainer.max_epochs=2")
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["model"]["_target_"] == "toy_vae.ToyVAE" and len(manifest["resumes"]) == 1
    last = run_dir / "checkpoints" / "last.ckpt"
    run(installed, tmp_path, "-m", "vae_lab.evaluate", f"ckpt_path={last}", "iwae_samples=8")
    metrics = json.loads((run_dir / "checkpoints" / "metrics.json").read_text())
    assert metrics["num_images"] == 1000 and metrics["test/iwae"] >= metrics["test/elbo"] - 1
    run(installed, tmp_path, "-m", "vae_lab.sample", f"ckpt_path={last}", "n=4")
    assert (run_dir / "checkpoints" / "samples.png").is_file()
    sweep_dir = tmp_path / "sweep"
    run(installed, tmp_path, "-m", "vae_lab.train", "-m", *common, "trainer.max_epochs=1", "model.latent_dim=2,3",
        f"hydra.sweep.dir={sweep_dir}")
    assert sorted(json.loads((sweep_dir / n / "result.json").read_text())["status"] for n in "01") == ["completed"] * 2
    run(installed, tmp_path, "-m", "vae_lab.report", str(sweep_dir))
    assert "model.latent_dim" in (sweep_dir / "report.md").read_text()
