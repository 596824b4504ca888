"""`python -m vae_lab.sample ckpt_path=PATH [n=64] [draw=true] [interpolate=[i,j]] [output_dir=DIR] [seed=S]`.

Draws n images from the checkpoint's model, `model.sample(n)`: z ~ its own prior (standard normal, mixture,
VampPrior, ...) and the likelihood's mean at z, or with `draw=true` one draw from p(x|z) (for Bernoulli pixels,
binary images). Writes a grid PNG (`samples.png`, beside the checkpoint by default), enlarged to a readable size.
With `interpolate=[i,j]` it also writes `interpolation.png`: test images i and j at the ends of a row of images
decoded (`decode_mean`, or drawn with `draw=true`) along the straight line between their posterior means
(`posterior_mean`). The same seed gives the same pictures.

`sample(cfg)` is a plain function (tests call it); `main` is the thin Hydra wrapper.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig

from vae_lab import CONFIG_DIR, run_dir
from vae_lab.atomic_files import atomic_write
from vae_lab.console import print_end_block, quiet_third_party_warnings
from vae_lab.errors import check_positive, exit_on_user_error, is_int, refuse
from vae_lab.evaluate import TEST_SIZE, prepare_output, require_ckpt_path
from vae_lab.preflight import check_memory


def sample(cfg: DictConfig) -> list[Path]:
    """Write samples.png (and interpolation.png when asked); return the paths written."""
    ckpt_path = require_ckpt_path(cfg, "vae_lab.sample")
    check_positive("n", cfg.n, 64)
    if not (is_int(cfg.steps) and cfg.steps >= 2):
        raise refuse("steps", cfg.steps, "an integer of 2 or more like 10 (both ends are included)")
    if not isinstance(cfg.draw, bool):
        raise refuse("draw", cfg.draw, "true or false")
    pair = cfg.interpolate
    if pair is not None and not (isinstance(pair, ListConfig) and len(pair) == 2
                                 and all(is_int(i) and 0 <= i < TEST_SIZE for i in pair)):
        raise refuse("interpolate", pair, f"null or two test-image indices from 0 to {TEST_SIZE - 1}, like "
                                          "interpolate=[0,1]")
    check_memory(cfg)  # n images decoded at once
    output_dir = prepare_output(cfg, ckpt_path)

    import torch
    from torchvision.utils import make_grid, save_image

    from vae_lab.callbacks.epoch_images import readable, seeded
    from vae_lab.checkpoints import load_checkpoint, test_batches

    checkpoint = load_checkpoint(ckpt_path)
    model = checkpoint.model

    def pictures(z: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean at z, or one draw from p(x|z) with draw=true (kept in [0, 1] for the PNG)."""
        return model.decode(z).sample().clamp(0, 1) if cfg.draw else model.decode_mean(z)

    def write(path: Path, images: torch.Tensor, nrow: int) -> Path:
        grid = make_grid(images.float(), nrow=nrow, padding=2, pad_value=0.5)
        atomic_write(path, lambda stream: save_image(readable(grid), stream, format="png"))
        return path

    with seeded(cfg.seed), torch.no_grad():  # the model's own draws, from torch's stream seeded here
        images = pictures(model.prior.sample(cfg.n))
        written = [write(output_dir / "samples.png", images, math.ceil(math.sqrt(cfg.n)))]
        if pair is not None:
            last = max(pair) + 1
            test_images = torch.cat([x for x, _ in test_batches(checkpoint, cfg.paths.data_dir,
                                                                       batch_size=1000, num_images=last)])
            ends = test_images[list(pair)]
            codes = model.posterior_mean(ends)
            weights = torch.linspace(0.0, 1.0, cfg.steps).unsqueeze(1)
            row = torch.cat([ends[:1], pictures((1 - weights) * codes[0] + weights * codes[1]), ends[1:]])
            written.append(write(output_dir / "interpolation.png", row, len(row)))
    return written


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sample")
def main(cfg: DictConfig) -> None:
    quiet_third_party_warnings()
    written = exit_on_user_error(sample, cfg)
    print_end_block(f"sampled {cfg.ckpt_path} (n={cfg.n}, seed={cfg.seed})",
                    notes=[f"wrote {path}" for path in written], logdir=Path(run_dir(str(cfg.ckpt_path), "")))


if __name__ == "__main__":
    main()
