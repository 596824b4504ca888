"""`python -m vae_lab.sample ckpt_path=PATH [n=64] [binary=true] [interpolate=[i,j]] [output_dir=DIR] [seed=S]`.

Draws z ~ N(0, I), decodes it with the checkpoint's decoder and writes a grid PNG (`samples.png`, beside the
checkpoint by default) of pixel probabilities, or of one Bernoulli draw per pixel with `binary=true` (the
interpolation too). With
`interpolate=[i,j]` it also writes `interpolation.png`: test images i and j at the ends of a row of decodings
along the straight line between their posterior means.

`sample(cfg)` is a plain function (tests call it); `main` is the thin Hydra wrapper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import hydra
from omegaconf import DictConfig

from vae_lab import CONFIG_DIR
from vae_lab.atomic_files import atomic_write, check_writable
from vae_lab.config_checks import Rule, Seed, Threads, check_config, positive
from vae_lab.console import print_end_block, quiet_third_party_warnings, run_dir_of
from vae_lab.errors import exit_on_user_error
from vae_lab.evaluate import TEST_SIZE, OutputDir, require_ckpt_path
from vae_lab.preflight import check_memory, run, set_threads


def _is_index_pair(value: Any) -> bool:
    pair = list(value) if hasattr(value, "__len__") and not isinstance(value, str) else None
    return pair is not None and len(pair) == 2 and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < TEST_SIZE for i in pair)


@dataclass(frozen=True)
class SampleSettings:
    """The keys of conf/sample.yaml and what each accepts (checked by `sample(cfg)`)."""

    n: Annotated[int, positive(64)] = 64
    steps: Annotated[int, Rule(lambda v: v >= 2, "an integer of 2 or more like 10 (both ends are included)")] = 10
    binary: bool = False
    interpolate: Annotated[Any, Rule(_is_index_pair, f"null or two test-image indices from 0 to {TEST_SIZE - 1}, "
                                                     "like interpolate=[0,1]")] = None
    output_dir: OutputDir = None
    threads: Threads = None
    seed: Seed = 0


def sample(cfg: DictConfig) -> list[Path]:
    """Write samples.png (and interpolation.png when asked); return the paths written."""
    ckpt_path = require_ckpt_path(cfg, "vae_lab.sample")
    check_config(cfg, SampleSettings)  # here, not before Hydra: sample creates no run folder
    check_memory(cfg)  # n images decoded at once
    set_threads(cfg.get("threads"))
    pair = None if cfg.interpolate is None else (int(cfg.interpolate[0]), int(cfg.interpolate[1]))

    import torch
    from torchvision.utils import save_image

    from vae_lab.checkpoints import load_checkpoint, test_batches

    checkpoint = load_checkpoint(ckpt_path)
    model = checkpoint.model
    generator = torch.Generator().manual_seed(cfg.seed)
    output_dir = Path(cfg.output_dir) if cfg.get("output_dir") else Path(ckpt_path).resolve().parent
    check_writable(output_dir)
    z = torch.randn(cfg.n, model.hparams.latent_dim, generator=generator)
    images = model.sample(z)
    if cfg.binary:
        images = torch.bernoulli(images, generator=generator)
    written = [output_dir / "samples.png"]
    atomic_write(written[0], lambda stream: save_image(images, stream, format="png", nrow=math.ceil(math.sqrt(cfg.n)),
                                                       padding=2, pad_value=0.5))
    if pair is not None:
        last = max(pair) + 1
        test_images = torch.cat([x for x, _ in test_batches(checkpoint, cfg.paths.data_dir,
                                                                   batch_size=1000, num_images=last)])
        ends = test_images[list(pair)]
        with torch.no_grad():
            mean, _ = model.encode(ends)
        weights = torch.linspace(0.0, 1.0, cfg.steps).unsqueeze(1)
        path_images = model.sample((1 - weights) * mean[0] + weights * mean[1])
        if cfg.binary:  # the same kind of picture as samples.png: one Bernoulli draw per pixel
            path_images = torch.bernoulli(path_images, generator=generator)
        row = torch.cat([ends[:1], path_images, ends[1:]])
        written.append(output_dir / "interpolation.png")
        atomic_write(written[1], lambda stream: save_image(row, stream, format="png", nrow=len(row), padding=2,
                                                           pad_value=0.5))
    return written


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sample")
def main(cfg: DictConfig) -> None:
    quiet_third_party_warnings()
    written = exit_on_user_error(sample, cfg)
    print_end_block(f"sampled {cfg.ckpt_path} (n={cfg.n}, seed={cfg.seed})",
                    notes=[f"wrote {path}" for path in written], logdir=run_dir_of(cfg.ckpt_path))


if __name__ == "__main__":
    run(main, CONFIG_DIR, "sample")  # a misspelt key or bad value: one sentence, before any work
