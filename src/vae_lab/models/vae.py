"""The contract every vae_lab model meets, and the LightningModule that trains any of them on any objective.

A model is a subclass of `VAE` that builds `self.encoder` (x -> mean, log-variance of q(z|x)) and `self.decoder`
(z -> Bernoulli logits of p(x|z)) and says which images it takes (`image_shape`). Everything else — the
objectives, the shared step for every stage, the optimizer, what the callbacks, `evaluate` and `sample` call
(`encode`, `decode`, `sample`, `reconstruct`, `latent_dim`) — is here, so a new model is one small file.

Objectives (hyperparameters, so a checkpoint says what it was trained on):
  objective=elbo  the ELBO, recon - beta * kl, with the KL as the tutorial's single-sample estimate (`kl=mc`) or
                  in closed form (`kl=analytic`); beta != 1 is the beta-VAE (Higgins et al. 2017).
  objective=iwae  the importance-weighted bound with k samples (Burda et al. 2016, eq. 8); k = 1 is the ELBO.
Whatever the objective, `*/elbo`, `*/recon` and `*/kl` are the plain ELBO and its terms (from the first sample),
so runs stay comparable; the trained objective is logged as `*/loss` (its negative, averaged over the batch).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import lightning as L
import torch
from torch import Tensor, nn

from vae_lab.config_checks import Rule, check_arguments, positive
from vae_lab.errors import VaeLabError
from vae_lab.objectives import (
    ElboTerms,
    analytic_elbo,
    beta_elbo,
    iwae_bound,
    log_importance_weights,
    monte_carlo_elbo,
    reparameterize,
)

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
NON_NEGATIVE = Rule(lambda v: v >= 0, "a number >= 0 like 1.0 (1 is the ELBO)")
LatentDim = Annotated[int, positive(50)]
LearningRate = Annotated[float, positive(1e-4)]
Objective = Literal["elbo", "iwae"]
KlEstimator = Literal["mc", "analytic"]
Samples = Annotated[int, positive(5)]
Beta = Annotated[float, NON_NEGATIVE]


class VAE(L.LightningModule):
    """Base class: subclasses call `super().__init__(...)` with these arguments, build `encoder` and `decoder`."""

    encoder: nn.Module
    decoder: nn.Module

    def __init__(
        self,
        latent_dim: LatentDim = 50,
        lr: LearningRate = 1e-4,
        objective: Objective = "elbo",
        k: Samples = 1,
        beta: Beta = 1.0,
        kl: KlEstimator = "mc",
    ) -> None:
        super().__init__()
        check_arguments(VAE, locals(), "model")
        if objective == "iwae" and beta != 1:
            raise VaeLabError(f"model.beta={beta} is for objective=elbo; the IWAE bound has no KL weight, use "
                              "model.beta=1 with model.objective=iwae.")
        if objective == "elbo" and k != 1:
            raise VaeLabError(f"model.k={k} is the IWAE's number of samples; use model.objective=iwae with it "
                              "(the ELBO takes k=1).")
        self.save_hyperparameters()  # every subclass's own __init__ arguments too (Lightning collects them)

    @property
    def latent_dim(self) -> int:
        return self.hparams.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The (channels, height, width) of the images this model takes."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x)."""
        mean, logvar = self.encoder(x)
        # exp(+-logvar) overflows float32 beyond ~88; trained encoders stay within a few units of 0, so this
        # wide clamp changes nothing for normal values and only keeps a diverging run finite long enough to report.
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits of p(x|z)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, ElboTerms]:
        """(the trained bound, per example; the plain ELBO's terms, per example) for a batch x."""
        hp = self.hparams
        mean, logvar = self.encode(x)
        if hp.objective == "iwae":
            z = reparameterize(mean, logvar, torch.randn(hp.k, *mean.shape, device=mean.device, dtype=mean.dtype))
            logits = self.decode(z.flatten(0, 1))
            logits = logits.view(hp.k, len(x), *logits.shape[1:])
            bound = iwae_bound(log_importance_weights(x, logits, z, mean, logvar))
            logits, z = logits[0], z[0]
        else:
            z = reparameterize(mean, logvar, torch.randn_like(mean))
            logits = self.decode(z)
        if hp.kl == "analytic":
            terms = analytic_elbo(x, logits, mean, logvar)
        else:
            terms = monte_carlo_elbo(x, logits, z, mean, logvar)
        return (bound if hp.objective == "iwae" else beta_elbo(terms, hp.beta)), terms

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
        bound, terms = self(x.to(self.dtype))
        loss = -bound.mean()
        self.log(f"{stage}/elbo", terms.elbo.mean(), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        if stage != "train":
            self.log(f"{stage}/recon", terms.recon.mean(), on_epoch=True, sync_dist=True)
            self.log(f"{stage}/kl", terms.kl.mean(), on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel updates every parameter instead of a few small kernels per tensor (CPU and CUDA).
        fused = True if self.device.type in ("cpu", "cuda") else None
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=fused)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which classes to rebuild from this file alone (`vae_lab.checkpoints.load_checkpoint`).
        checkpoint["vae_lab"] = {"model": _class_path(self)}
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            checkpoint["vae_lab"]["data"] = _class_path(datamodule)


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
