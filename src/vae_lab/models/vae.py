"""The contract every vae_lab model meets, and the LightningModule that trains any of them on any objective.

A VAE is three distributions and a bound (Kingma & Welling 2014):
    q = encode(x)        q(z|x), a torch Distribution over z (the `posterior` component: Gaussian, IAF, ...)
    prior                p(z), a module with log_prob(z), sample(n), distribution() (standard, MoG, VampPrior)
    p_x = decode(z)      p(x|z), a Distribution over images (the `likelihood` component: Bernoulli, ...)
    log_weights(x, k)    log p(x|z) + log p(z) - log q(z|x) for k samples z ~ q(z|x), shaped (k, B)
Every objective, `evaluate`, the sample grids and `sample` go through these, so what is scored and drawn is the
model that was trained. A model family is a subclass that builds `self.encoder` (x -> the posterior's
`num_inputs` features) and `self.decoder` (z -> the likelihood's parameters, (B, num_params * C, H, W)).
A hierarchical model overrides `encode`, `decode` and `prior` with joint distributions over all its z.

Objectives (hyperparameters, so a checkpoint says what it was trained on):
  objective=elbo  recon - beta * KL, KL as the single-sample estimate (`kl=mc`, the tutorial's) or in closed form
                  (`kl=analytic`, where torch.distributions registers one); with optional KL warm-up
                  (`warmup_epochs`) and free bits (`free_bits`).
  objective=iwae  the importance-weighted bound with k samples (Burda et al. 2016, eq. 8); k = 1 is the ELBO.
Whatever the objective, `*/elbo`, `*/recon` and `*/kl` are the plain ELBO and its terms (from the first sample),
so runs stay comparable; the trained objective is logged as `*/loss`, and `val/bpd`, `test/bpd` give the ELBO in
bits per dimension.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.distributions import Distribution, TransformedDistribution, kl_divergence

from vae_lab.errors import ConfigError
from vae_lab.likelihoods import Likelihood
from vae_lab.objectives import ElboTerms, elbo_terms, iwae_bound, penalized_elbo, warmup_beta
from vae_lab.posteriors import Posterior
from vae_lab.priors import Prior, VampPrior

Spec = Mapping[str, Any] | None  # a component as config: {"_target_": "vae_lab.priors.VampPrior", "components": 500}
STANDARD_PRIOR = {"_target_": "vae_lab.priors.StandardNormal"}
BERNOULLI = {"_target_": "vae_lab.likelihoods.Bernoulli"}
GAUSSIAN_POSTERIOR = {"_target_": "vae_lab.posteriors.Gaussian"}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "fused": True}


def build(spec: Spec, default: Mapping[str, Any], key: str, **context: Any) -> Any:
    """Instantiate a component from its config, passing the `context` values (latent_dim, image_shape) it takes."""
    spec = dict(OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else (spec or default))
    try:
        wanted = inspect.signature(get_class(spec["_target_"])).parameters
    except (KeyError, ImportError, ValueError) as error:
        raise ConfigError(f"model.{key}={spec} names no class vae_lab can import ({error}); use one of the "
                          f"conf/{key}/ choices, e.g. {key}={default['_target_'].split('.')[-1].lower()}.") from None
    return instantiate(spec, **{name: value for name, value in context.items() if name in wanted and name not in spec})


def positive(key: str, value: float, example: float) -> None:
    if not value > 0:
        raise ConfigError(f"model.{key}={value} must be positive; use a number like {example}.")


class VAE(L.LightningModule):
    """Base class: subclasses call `super().__init__(**common)` and build `encoder` and `decoder`."""

    encoder: nn.Module
    decoder: nn.Module

    def __init__(
        self,
        latent_dim: int = 50,
        image_shape: tuple[int, int, int] | list[int] = (1, 28, 28),
        lr: float = 1e-4,
        objective: Literal["elbo", "iwae"] = "elbo",
        k: int = 1,
        beta: float = 1.0,
        kl: Literal["mc", "analytic"] = "mc",
        warmup_epochs: float = 0,
        free_bits: float = 0.0,
        prior: Spec = None,
        likelihood: Spec = None,
        posterior: Spec = None,
        optimizer: Spec = None,
        scheduler: Spec = None,
    ) -> None:
        super().__init__()
        self._check(latent_dim, image_shape, lr, objective, k, beta, kl, warmup_epochs, free_bits)
        self.save_hyperparameters()  # every subclass's own __init__ arguments too (Lightning collects them)
        shape = tuple(int(side) for side in image_shape)
        self.likelihood: Likelihood = build(likelihood, BERNOULLI, "likelihood", image_shape=shape)
        self.posterior: Posterior = build(posterior, GAUSSIAN_POSTERIOR, "posterior", latent_dim=latent_dim)
        self.prior: Prior = self.build_prior(prior, shape)
        self._refuse_what_cannot_be_computed(kl)

    def build_prior(self, spec: Spec, image_shape: tuple[int, int, int]) -> Prior:
        """p(z) from its config (a hierarchical model overrides this to build its joint prior)."""
        prior = build(spec, STANDARD_PRIOR, "prior", latent_dim=self.latent_dim, image_shape=image_shape)
        if hasattr(prior, "bind"):
            prior.bind(self.encode)  # a VampPrior's components are this model's q(z|u_k)
        return prior

    def _refuse_what_cannot_be_computed(self, kl: str) -> None:
        """A VampPrior without a Gaussian q, or kl=analytic without a closed form, refused now rather than at the
        first training step: tried on a q built from zero features (no encoder needed)."""
        q = self.posterior(torch.zeros(1, self.posterior.num_inputs))
        vamp = isinstance(self.prior, VampPrior)
        if vamp:
            self.prior.mixture(q)  # raises ConfigError for a q that is not a diagonal Gaussian
        if kl != "analytic" or (hasattr(self.prior, "bind") and not vamp):
            return  # a user's prior over this model's encoder (not built yet): the first step refuses it if need be
        self._analytic_kl(q, self.prior.mixture(q) if vamp else None)

    @staticmethod
    def _check(latent_dim: int, image_shape: Any, lr: float, objective: str, k: int, beta: float, kl: str,
               warmup_epochs: float, free_bits: float) -> None:
        """Each value's range, in one sentence naming the key (types come from the config's signature)."""
        if not (isinstance(latent_dim, int) and latent_dim >= 1):
            raise ConfigError(f"model.latent_dim={latent_dim} is not a number of latent dimensions; use a positive "
                              "integer like 50.")
        if len(image_shape) != 3 or not all(int(side) >= 1 for side in image_shape):
            raise ConfigError(f"model.image_shape={list(image_shape)} is not [channels, height, width]; use e.g. "
                              "[1, 28, 28].")
        positive("lr", lr, 1e-4)
        if objective not in ("elbo", "iwae"):
            raise ConfigError(f"model.objective={objective} is not a bound vae_lab trains; use elbo or iwae.")
        if kl not in ("mc", "analytic"):
            raise ConfigError(f"model.kl={kl} is not a KL estimator; use mc (single sample) or analytic.")
        positive("k", k, 5)
        if beta < 0 or warmup_epochs < 0 or free_bits < 0:
            key, value = next((key, v) for key, v in (("beta", beta), ("warmup_epochs", warmup_epochs),
                                                      ("free_bits", free_bits)) if v < 0)
            raise ConfigError(f"model.{key}={value} is negative; use a number >= 0 (0 switches it off; beta=1 is "
                              "the ELBO).")
        if objective == "iwae" and (beta != 1 or warmup_epochs or free_bits):
            raise ConfigError(f"model.beta={beta}, model.warmup_epochs={warmup_epochs} and model.free_bits="
                              f"{free_bits} are for objective=elbo; the IWAE bound takes none (use 1, 0 and 0).")
        if objective == "elbo" and k != 1:
            raise ConfigError(f"model.k={k} is the IWAE's number of samples; use model.objective=iwae with it "
                              "(the ELBO takes k=1).")

    # ----------------------------------------------------------------------------------------------- the contract
    @property
    def latent_dim(self) -> int:
        return self.hparams.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The (channels, height, width) of the images this model takes."""
        return tuple(int(side) for side in self.hparams.image_shape)

    def encode(self, x: Tensor) -> Distribution:
        """q(z|x): a distribution over z whose log_prob sums over the latent dimensions."""
        return self.posterior(self.encoder(x))

    def decode(self, z: Tensor) -> Distribution:
        """p(x|z): a distribution over images whose log_prob sums over pixels and whose mean is an image."""
        return self.likelihood(self.decoder(z))

    def log_weight_terms(self, x: Tensor, k: int = 1, posterior: Distribution | None = None
                         ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(log p(x|z), log p(z), log q(z|x), z) for k samples z ~ q(z|x): each (k, B), z (k, B, D)."""
        q = self.encode(x) if posterior is None else posterior
        z = q.rsample((k,))
        p_x = self.decode(z.flatten(0, 1))
        log_px = p_x.log_prob(x.expand(k, *x.shape).flatten(0, 1)).view(k, len(x))
        return log_px, self.prior.log_prob(z), q.log_prob(z), z

    def log_weights(self, x: Tensor, k: int = 1, posterior: Distribution | None = None) -> Tensor:
        """log p(x|z_i) + log p(z_i) - log q(z_i|x) for z_i ~ q(z|x), i = 1..k: (k, B). `posterior` reuses an
        `encode(x)` across several calls (evaluate draws thousands of samples in chunks)."""
        log_px, log_pz, log_qz, _ = self.log_weight_terms(x, k, posterior)
        return log_px + log_pz - log_qz

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n images drawn from the model: the likelihood's mean at z ~ p(z)."""
        return self.decode(self.prior.sample(n)).mean

    @torch.no_grad()
    def decode_mean(self, z: Tensor) -> Tensor:
        """The likelihood's mean image at given latent vectors z (B, D)."""
        return self.decode(z.to(self.device, self.dtype)).mean

    @torch.no_grad()
    def posterior_mean(self, x: Tensor) -> Tensor:
        """A deterministic code of each image: the mean of q(z|x) (a flow's transform of its base mean)."""
        return representative(self.encode(x.to(self.device, self.dtype)))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The likelihood's mean decoded from the posterior's mean: deterministic, so grids are comparable."""
        return self.decode(self.posterior_mean(x)).mean

    def check_data(self, datamodule: Any) -> None:
        """Refuse data whose images or values this model cannot take, in one sentence, before training starts."""
        wanted, found = self.image_shape, tuple(datamodule.image_shape)
        if wanted != found:
            raise ConfigError(
                f"the data's images are {'x'.join(map(str, found))} (channels x height x width) but "
                f"{type(self).__name__} takes {'x'.join(map(str, wanted))}; set model.image_shape=["
                f"{','.join(map(str, found))}], or use images of that size.")
        binarize = datamodule.hparams.get("binarize")
        if binarize is not None:
            self.likelihood.check_data(str(binarize))

    # ---------------------------------------------------------------------------------------------- the objective
    def forward(self, x: Tensor, beta: float | None = None) -> tuple[Tensor, ElboTerms]:
        """(the trained bound, per example; the plain ELBO's terms from the first sample, per example)."""
        hp = self.hparams
        q = self.encode(x)
        log_px, log_pz, log_qz, z = self.log_weight_terms(x, hp.k, q)
        if hp.kl == "analytic":
            kl = self._analytic_kl(q)
        else:
            kl = log_qz[0] - log_pz[0]
        terms = elbo_terms(log_px[0], kl)
        if hp.objective == "iwae":
            return iwae_bound(log_px + log_pz - log_qz), terms
        return penalized_elbo(terms, hp.beta if beta is None else beta, hp.free_bits), terms

    def _analytic_kl(self, q: Distribution, p: Distribution | None = None) -> Tensor:
        """KL(q || p) in closed form, p the prior's distribution unless given; ConfigError where torch has none."""
        try:
            return kl_divergence(q, self.prior.distribution() if p is None else p)
        except NotImplementedError:
            raise ConfigError(
                f"model.kl=analytic needs a closed-form KL(q || p), and torch.distributions has none for "
                f"{type(self.posterior).__name__} q and {type(self.prior).__name__} p; use model.kl=mc.") from None

    def beta_now(self) -> float:
        """beta, times the KL warm-up's linear ramp at this point of training (by optimizer steps)."""
        hp = self.hparams
        if not hp.warmup_epochs or self._trainer is None:
            return hp.beta
        batches = max(1, int(self.trainer.num_training_batches)) if math.isfinite(
            self.trainer.num_training_batches) else 1
        return warmup_beta(hp.beta, self.trainer.fit_loop.total_batch_idx / batches, hp.warmup_epochs)

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, _ = batch
        beta = self.beta_now() if stage == "train" else None
        bound, terms = self(x.to(self.dtype), beta=beta)
        loss = -bound.mean()
        self.log(f"{stage}/elbo", terms.elbo.mean(), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        if stage != "train":
            self.log(f"{stage}/recon", terms.recon.mean(), on_epoch=True, sync_dist=True)
            self.log(f"{stage}/kl", terms.kl.mean(), on_epoch=True, sync_dist=True)
            num_dims = math.prod(self.image_shape)
            self.log(f"{stage}/bpd", self.likelihood.bits_per_dim(terms.elbo, num_dims).mean(), on_epoch=True,
                     sync_dist=True)
        elif self.hparams.warmup_epochs:
            self.log("train/beta", float(beta), on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def configure_optimizers(self) -> Any:
        """The optimizer (and learning-rate schedule, stepped per epoch) from their `_partial_` configs."""
        spec = dict(self.hparams.optimizer or ADAM)
        if spec.get("fused") and self.device.type not in ("cpu", "cuda"):
            spec.pop("fused")  # one kernel updates every parameter on CPU and CUDA; elsewhere torch's default
        optimizer = instantiate(spec)(self.parameters(), lr=self.hparams.lr)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(dict(self.hparams.scheduler))(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which classes to rebuild from this file alone (`vae_lab.checkpoints.load_checkpoint`).
        checkpoint["vae_lab"] = {"model": _class_path(self)}
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            checkpoint["vae_lab"]["data"] = _class_path(datamodule)


def representative(q: Distribution) -> Tensor:
    """q's mean, or for a flow (a TransformedDistribution) its transforms applied to the base mean."""
    if isinstance(q, TransformedDistribution):
        z = representative(q.base_dist)
        for transform in q.transforms:
            z = transform(z)
        return z
    return q.mean


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
