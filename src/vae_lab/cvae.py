"""The convolutional VAE as a LightningModule: one shared step computes the ELBO for every stage.

Interface other parts rely on (callbacks, evaluation, sampling): `encode(x)`, `decode(z)`, `sample(z)`,
`reconstruct(x)` and `hparams.latent_dim`.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from vae_lab.networks import Decoder, Encoder
from vae_lab.objectives import ElboTerms, analytic_elbo, monte_carlo_elbo, reparameterize
from vae_lab.validation import check_values

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


class CVAE(L.LightningModule):
    def __init__(
        self,
        latent_dim: int = 50,
        lr: float = 1e-4,
        kl: str = "mc",
        channels_last: bool = False,
        fused_adam: bool = False,
        compile: str | None = None,
    ) -> None:
        super().__init__()
        check_values(
            "model", latent_dim=latent_dim, lr=lr, kl=kl, channels_last=channels_last, fused_adam=fused_adam,
            compile=compile,
        )
        self.save_hyperparameters()
        self.encoder = Encoder(latent_dim)
        self.decoder = Decoder(latent_dim)
        # Speed options change how the networks run, never what they compute (README, "Performance").
        if channels_last:  # NHWC: oneDNN's preferred layout on CPU, tensor cores' on GPU; inputs follow the weights
            self.to(memory_format=torch.channels_last)
        if compile is not None:  # compiled lazily at the first step; parameter names (checkpoints) are unchanged
            self.encoder.compile(mode=compile)
            self.decoder.compile(mode=compile)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x)."""
        mean, logvar = self.encoder(x)
        # exp(+-logvar) overflows float32 beyond ~88; trained encoders stay within a few units of 0, so this
        # wide clamp changes nothing for normal values and only keeps a diverging run finite long enough to report.
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits of p(x|z)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> ElboTerms:
        mean, logvar = self.encode(x)
        z = reparameterize(mean, logvar, torch.randn_like(mean))
        if self.hparams.kl == "analytic":
            return analytic_elbo(x, self.decode(z), mean, logvar)
        return monte_carlo_elbo(x, self.decode(z), z, mean, logvar)

    @torch.no_grad()
    def sample(self, z: Tensor) -> Tensor:
        """Pixel probabilities sigmoid(decode(z)) for latent vectors z (B, latent_dim)."""
        return torch.sigmoid(self.decode(z.to(self.device, self.dtype)))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Pixel probabilities decoded from the posterior mean: deterministic, so grids are comparable."""
        mean, _ = self.encode(x.to(self.device, self.dtype))
        return torch.sigmoid(self.decode(mean))

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, _ = batch
        terms = self(x)
        self.log(f"{stage}/elbo", terms.elbo.mean(), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        if stage != "train":
            self.log(f"{stage}/recon", terms.recon.mean(), on_epoch=True, sync_dist=True)
            self.log(f"{stage}/kl", terms.kl.mean(), on_epoch=True, sync_dist=True)
        return -terms.elbo.mean()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel updates every parameter (on CPU and GPU) instead of a few small kernels per tensor.
        fused = self.hparams.get("fused_adam", False) or None
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=fused)
